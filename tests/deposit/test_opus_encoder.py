"""The libopus encoder writes a correct RFC 7845 Ogg Opus stream that libsndfile decodes."""

from __future__ import annotations

import struct

import numpy
import pytest
import soundfile

from mailcall.deposit.audio import encoded_duration, sndfile_mp3, sndfile_opus
from mailcall.deposit.opus_encoder import LibopusEncoder, available
from tests.deposit.support import MEDIA

RECORDINGS = [MEDIA / "voicemail-dtmf-end.wav", MEDIA / "voicemail-hangup-end.wav"]


def ogg_pages(data: bytes):
    """(header_type, granule, serial, sequence, [packets-bytes]) per page; checks the capture."""
    pos = 0
    pages = []
    while pos < len(data):
        assert data[pos : pos + 4] == b"OggS", f"no capture pattern at {pos}"
        header_type, granule, serial, seq = struct.unpack_from("<BqII", data, pos + 5)
        nseg = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + nseg]
        body = pos + 27 + nseg
        pages.append((header_type, granule, serial, seq, data[body : body + sum(lacing)]))
        pos = body + sum(lacing)
    return pages


def test_libopus_is_loadable_here():
    assert available(), "install Debian's libopus0 and libogg0 (listed in .ci/apt-packages.txt)"


@pytest.mark.parametrize("wav", RECORDINGS, ids=lambda p: p.name)
def test_stream_structure_and_duration(tmp_path, wav):
    out = tmp_path / "v.opus"
    LibopusEncoder().encode(str(wav), str(out))
    data = out.read_bytes()
    pages = ogg_pages(data)
    head = pages[0][4]
    assert pages[0][0] == 0x02  # beginning of stream
    assert head[:8] == b"OpusHead" and len(head) == 19
    version, channels, pre_skip, rate, gain, family = struct.unpack("<BBHIhB", head[8:])
    assert (version, channels, rate, gain, family) == (1, 1, 8000, 0, 0)
    assert 0 < pre_skip <= 48000 // 10
    assert pages[0][1] == 0 and pages[1][1] == 0  # header pages carry granule 0
    assert pages[1][4].startswith(b"OpusTags")
    assert pages[-1][0] & 0x04  # end of stream
    assert [p[3] for p in pages] == list(range(len(pages)))
    assert len({p[2] for p in pages}) == 1
    granules = [p[1] for p in pages[2:] if p[1] != -1]
    assert granules == sorted(granules)
    info = soundfile.info(wav)
    # The last granule trims the padding: pre-skip plus exactly the recorded samples at 48 kHz.
    assert pages[-1][1] == pre_skip + info.frames * 6
    decoded = encoded_duration(out)
    assert abs(decoded - info.duration) <= 0.050
    kbps = len(data) * 8 / info.duration / 1000
    assert kbps <= 16.5, kbps


def test_16khz_input_and_silence(tmp_path):
    wav = tmp_path / "wide.wav"
    tone = numpy.sin(numpy.arange(16000 * 3) * 2 * numpy.pi * 440 / 16000) * 8000
    soundfile.write(wav, tone.astype(numpy.int16), 16000)
    LibopusEncoder().encode(str(wav), str(tmp_path / "w.opus"))
    assert abs(encoded_duration(tmp_path / "w.opus") - 3.0) <= 0.05
    quiet = tmp_path / "short.wav"
    soundfile.write(quiet, numpy.zeros(40, dtype=numpy.int16), 8000)  # 5 ms: less than a frame
    LibopusEncoder().encode(str(quiet), str(tmp_path / "s.opus"))
    assert encoded_duration(tmp_path / "s.opus") <= 0.05


def test_unsupported_rate_is_refused(tmp_path):
    wav = tmp_path / "odd.wav"
    soundfile.write(wav, numpy.zeros(11025, dtype=numpy.int16), 11025)
    with pytest.raises(ValueError, match="11025"):
        LibopusEncoder().encode(str(wav), str(tmp_path / "o.opus"))


@pytest.mark.parametrize("encoder", [sndfile_opus(), sndfile_mp3()], ids=lambda e: e.format)
def test_libsndfile_baselines_keep_the_length(tmp_path, encoder):
    out = tmp_path / f"v.{encoder.extension}"
    encoder.encode(str(RECORDINGS[0]), str(out))
    assert abs(encoded_duration(out) - soundfile.info(RECORDINGS[0]).duration) <= 0.050
