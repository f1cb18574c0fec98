"""Audio formats voicemail can be attached in, and the checks run on a recording first.

Every encoder is a small frozen object with a *blocking* ``encode(wav, out)``:
the spool worker runs it in a process pool so a burst of voicemail never stalls
the event loop that answers calls (see ``bench/deposit/bench_offloop.py``). They are
plain picklable values for the same reason.

The baseline encoders go through libsndfile (the ``soundfile`` package, cffi):
its Ogg/Opus and MP3 (LAME) writers. The preferred Opus encoder drives libopus
directly (``deposit/opus_encoder.py``) because libsndfile gives no control over
the Opus application/signal and runs ~2x slower on 8 kHz speech.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import soundfile


class RecordingProblem(Exception):
    """The recording cannot be attached: ``kind`` is "no_recording", "empty_recording"
    or "corrupt_recording" (keys of :mod:`mailcall.deposit.wording`)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def probe(path: str | os.PathLike | None) -> float:
    """Duration in seconds of a WAV recording, or :class:`RecordingProblem` saying why not."""
    if not path:
        raise RecordingProblem("no_recording", "no recording was made")
    p = Path(path)
    if not p.is_file():
        raise RecordingProblem("no_recording", f"{p} does not exist")
    if p.stat().st_size == 0:
        raise RecordingProblem("empty_recording", f"{p} is 0 bytes")
    try:
        info = soundfile.info(str(p))
    except (RuntimeError, soundfile.LibsndfileError) as exc:
        raise RecordingProblem("corrupt_recording", f"{p}: {exc}") from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise RecordingProblem("empty_recording", f"{p} holds no audio")
    return info.frames / info.samplerate


def encoded_duration(path: str | os.PathLike) -> float:
    """Duration of an encoded file as libsndfile decodes it (what a mail client will play)."""
    with soundfile.SoundFile(str(path)) as f:
        return f.frames / f.samplerate


@dataclass(frozen=True, slots=True)
class WavEncoder:
    """The recording as Asterisk wrote it: no loss, no CPU, ~16 kB per second at 8 kHz."""

    format: str = "wav"
    mime_type: str = "audio/wav"
    extension: str = "wav"
    name: str = "wav (as recorded)"

    def encode(self, wav_path: str, out_path: str) -> None:
        shutil.copyfile(wav_path, out_path)

    @property
    def bitrate_note(self) -> str:
        return "PCM as recorded"


@dataclass(frozen=True, slots=True)
class SoundfileEncoder:
    """libsndfile's own Opus (in Ogg) or MP3 writer, with its default settings."""

    format: str
    mime_type: str
    extension: str
    container: str
    subtype: str
    name: str = ""

    def encode(self, wav_path: str, out_path: str) -> None:
        data, rate = soundfile.read(wav_path, dtype="int16", always_2d=True)
        with soundfile.SoundFile(
            out_path,
            "w",
            samplerate=rate,
            channels=data.shape[1],
            format=self.container,
            subtype=self.subtype,
        ) as out:
            out.write(data)


def sndfile_opus() -> SoundfileEncoder:
    return SoundfileEncoder("opus", "audio/ogg", "opus", "OGG", "OPUS", "opus (libsndfile)")


def sndfile_mp3() -> SoundfileEncoder:
    return SoundfileEncoder(
        "mp3", "audio/mpeg", "mp3", "MP3", "MPEG_LAYER_III", "mp3 (libsndfile/LAME)"
    )
