"""Voicemail attachments decoded in-process to one 8 kHz .sln file, or one clear error."""

from __future__ import annotations

import io
import time
import wave

import numpy
import pytest
import soundfile

from mailcall.deposit.audio import sndfile_mp3, sndfile_opus
from mailcall.deposit.opus_encoder import LibopusEncoder
from mailcall.playback import TELEPHONE_RATE, UnplayableAudio, decode_to_sln


def tone(seconds: float, rate: int = 8000, hz: float = 440.0) -> numpy.ndarray:
    t = numpy.arange(int(seconds * rate)) / rate
    # A tone that comes and goes, so the decoded level can be compared, not just "non-zero".
    return (numpy.sin(2 * numpy.pi * hz * t) * 12000 * (0.6 + 0.4 * numpy.sin(t))).astype(
        numpy.int16)


def recording(tmp_path, seconds: float = 12.0, rate: int = 8000):
    """A WAV like the one Asterisk records for the deposit."""
    path = tmp_path / "rec.wav"
    soundfile.write(str(path), tone(seconds, rate), rate, subtype="PCM_16")
    return path


def decoded(path) -> numpy.ndarray:
    return numpy.frombuffer(path.read_bytes(), dtype="<i2")


def level(samples: numpy.ndarray) -> float:
    return float(numpy.sqrt(numpy.mean(numpy.square(samples.astype(float))))) / 32768


def test_deposit_opus_decodes_back_to_the_recorded_length(tmp_path):
    wav = recording(tmp_path)
    LibopusEncoder().encode(str(wav), str(tmp_path / "vm.opus"))  # what the deposit attaches
    data = (tmp_path / "vm.opus").read_bytes()
    out = tmp_path / "vm.sln"
    seconds = decode_to_sln(data, "audio/ogg", out)
    assert seconds == pytest.approx(12.0, abs=0.03)
    samples = decoded(out)
    assert len(samples) == round(seconds * TELEPHONE_RATE)
    assert level(samples) == pytest.approx(level(tone(12.0)), rel=0.15)


def test_libsndfile_opus_and_codec_parameters_are_accepted(tmp_path):
    wav = recording(tmp_path, 5.0)
    sndfile_opus().encode(str(wav), str(tmp_path / "vm.opus"))
    out = tmp_path / "vm.sln"
    seconds = decode_to_sln((tmp_path / "vm.opus").read_bytes(), 'audio/ogg; codecs="opus"', out)
    assert seconds == pytest.approx(5.0, abs=0.05)


def test_wav_at_any_rate_and_channels_becomes_8khz_mono(tmp_path):
    stereo = numpy.stack([tone(3.0, 44100), tone(3.0, 44100, 880)], axis=1)
    buf = io.BytesIO()
    soundfile.write(buf, stereo, 44100, format="WAV", subtype="PCM_16")
    out = tmp_path / "x.sln"
    assert decode_to_sln(buf.getvalue(), "audio/x-wav", out) == pytest.approx(3.0, abs=0.01)
    assert len(decoded(out)) == pytest.approx(3 * TELEPHONE_RATE, abs=2)
    assert level(decoded(out)) > 0.1


def test_mp3_from_the_deposit_encoder(tmp_path):
    wav = recording(tmp_path, 6.0)
    sndfile_mp3().encode(str(wav), str(tmp_path / "vm.mp3"))  # libsndfile's LAME writer
    out = tmp_path / "vm.sln"
    seconds = decode_to_sln((tmp_path / "vm.mp3").read_bytes(), "audio/mpeg", out)
    assert seconds == pytest.approx(6.0, abs=0.1)
    assert level(decoded(out)) == pytest.approx(level(tone(6.0)), rel=0.2)


@pytest.mark.parametrize("data, mime, why", [
    (b"", "audio/ogg", "is empty"),
    (b"\0" * 4000, "audio/ogg", "cannot be decoded"),
    (b"OggS" + bytes(range(256)) * 40, "audio/ogg", "cannot be decoded"),
    (numpy.random.default_rng(7).bytes(50_000), "audio/mpeg", "cannot be decoded"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav", "cannot be decoded"),
    (b"hello", "text/plain", "not audio that can be played"),
    (b"hello", "application/x-msdownload", "not audio that can be played"),
])
def test_garbage_is_one_clear_error_and_leaves_nothing(tmp_path, data, mime, why):
    out = tmp_path / "x.sln"
    with pytest.raises(UnplayableAudio, match=why) as exc:
        decode_to_sln(data, mime, out)
    assert exc.value.reason
    assert "BytesIO" not in exc.value.reason
    assert list(tmp_path.iterdir()) == []  # no output, no temporary file


def test_a_type_that_lies_about_its_content_is_refused(tmp_path):
    wav = recording(tmp_path, 1.0)
    with pytest.raises(UnplayableAudio, match="declared audio/ogg holds WAV"):
        decode_to_sln(wav.read_bytes(), "audio/ogg", tmp_path / "x.sln")


def test_a_truncated_message_plays_what_arrived(tmp_path):
    wav = recording(tmp_path)
    LibopusEncoder().encode(str(wav), str(tmp_path / "vm.opus"))
    data = (tmp_path / "vm.opus").read_bytes()
    seconds = decode_to_sln(data[: len(data) // 2], "audio/ogg", tmp_path / "half.sln")
    assert 2.0 < seconds < 10.0  # about half: VBR makes the halves of the bytes unequal
    with pytest.raises(UnplayableAudio):
        decode_to_sln(data[:100], "audio/ogg", tmp_path / "head.sln")


def test_a_message_longer_than_the_cap_stops_early(tmp_path):
    wav = recording(tmp_path, 30.0)
    LibopusEncoder().encode(str(wav), str(tmp_path / "vm.opus"))
    started = time.perf_counter()
    with pytest.raises(UnplayableAudio, match="more than the 10 s"):
        decode_to_sln((tmp_path / "vm.opus").read_bytes(), "audio/ogg", tmp_path / "x.sln",
                      max_seconds=10)
    assert time.perf_counter() - started < 1.0
    assert not (tmp_path / "x.sln").exists()


def test_a_wav_header_claiming_hours_is_refused_before_decoding(tmp_path):
    # 8 kHz mono header with a data chunk claiming 2 hours; only 1 s of samples behind it.
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(tone(1.0).tobytes())
    data = bytearray(buf.getvalue())
    claimed = 2 * 3600 * 8000 * 2
    data[40:44] = claimed.to_bytes(4, "little")
    data[4:8] = (claimed + 36).to_bytes(4, "little")
    out = tmp_path / "x.sln"
    try:
        seconds = decode_to_sln(bytes(data), "audio/wav", out)
    except UnplayableAudio as exc:
        assert "more than the 600 s" in exc.reason
    else:  # libsndfile trusted the file size over the header: what is there plays
        assert seconds == pytest.approx(1.0, abs=0.01)


def test_an_oversized_attachment_is_refused_without_decoding(tmp_path, monkeypatch):
    import mailcall.playback.decode as decode

    monkeypatch.setattr(decode, "MAX_BYTES", 1000)
    with pytest.raises(UnplayableAudio, match="more than the 1000 bytes"):
        decode_to_sln(b"\0" * 1001, "audio/wav", tmp_path / "x.sln")
