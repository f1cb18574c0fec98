"""A recording Asterisk had not finished writing still reaches the mailbox with its audio.

format_wav writes the RIFF and data sizes when it closes the file; a copy made
while RECORD FILE still runs has 0 in both (mailcall stopping mid-message, or
the FastAGI connection lost). These tests build such a file from a real
recording, as Asterisk leaves it, and check the spool's copy plays.
"""

from __future__ import annotations

import logging
import os
import struct

import soundfile

from mailcall.deposit.audio import probe
from mailcall.deposit.spool import Spool
from mailcall.deposit.wav_header import complete_wav_header

from .support import MEDIA, voice

RECORDED = MEDIA / "voicemail-dtmf-end.wav"


def still_being_written(path, cut: int | None = None):
    """The recording as it is on disk before Asterisk's wav_close: sizes 0, maybe cut short."""
    data = bytearray(RECORDED.read_bytes()[:cut])
    data[4:8] = struct.pack("<I", 0)
    data[40:44] = struct.pack("<I", 0)
    path.write_bytes(bytes(data))
    return path


def test_an_unfinished_recording_reads_as_empty_without_repair(tmp_path):
    """The failure this guards against: libsndfile sees no frames in such a file."""
    assert soundfile.info(str(still_being_written(tmp_path / "rec.wav"))).frames == 0


def test_the_spool_copy_gets_its_sizes_from_its_length(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mailcall.deposit.spool")
    rec = still_being_written(tmp_path / "vm-1.wav", cut=30_001)  # cut mid-sample
    spool = Spool(tmp_path / "spool")
    sid = spool.accept(voice("1795887768.3", recording=str(rec)))
    (copy,) = (tmp_path / "spool" / "data").glob(f"{sid}.wav")
    frames = (30_001 - 44) // 2
    assert soundfile.info(str(copy)).frames == frames
    assert probe(copy) == frames / 8000
    head = copy.read_bytes()[:44]
    assert struct.unpack_from("<I", head, 4)[0] == 36 + 2 * frames
    assert struct.unpack_from("<I", head, 40)[0] == 2 * frames
    assert rec.read_bytes()[4:8] == b"\0\0\0\0"  # Asterisk's file is left alone
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "still being written by Asterisk" in warning and str(rec) in warning


def test_a_finished_recording_is_copied_byte_for_byte(tmp_path):
    spool = Spool(tmp_path / "spool")
    sid = spool.accept(voice("1795887768.4", recording=str(RECORDED)))
    (copy,) = (tmp_path / "spool" / "data").glob(f"{sid}.wav")
    assert copy.read_bytes() == RECORDED.read_bytes()


def test_files_that_are_not_wav_are_left_alone(tmp_path):
    for content in (b"", b"RIFF", b"not a wav file at all" * 10,
                    b"RIFF\0\0\0\0WAVEjunk\xff\xff\xff\xff"):
        path = tmp_path / "x.wav"
        path.write_bytes(content)
        fd = os.open(path, os.O_RDWR)
        try:
            assert complete_wav_header(fd) is False
        finally:
            os.close(fd)
        assert path.read_bytes() == content
