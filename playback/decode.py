"""Voicemail attachments (Opus, WAV, MP3…) decoded in-process to one ``.sln`` file.

libsndfile (the ``soundfile`` package, already used by the deposit) reads every
format the deposit writes — Ogg Opus from ``deposit/opus_encoder.py`` and
libsndfile's own Opus, WAV as recorded, MP3 — and the wheel bundles
libsndfile 1.2 with its Opus and mpg123 decoders, so no system package and no
process per message is needed. Binding libopusfile through cffi would only
cover Opus and add a second decoder to keep safe.

Decoding streams in blocks through libsoxr to 8 kHz, so memory stays at one
block plus the output file whatever the input claims, and a message longer
than ``max_seconds`` stops at that point rather than after decoding it all.
Every failure is one :class:`UnplayableAudio`, which the menu turns into "this
message cannot be played".
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy
import soundfile
import soxr

from mailcall.playback.pcm import FILE_MODE, TELEPHONE_RATE

MAX_SECONDS = 600.0
#: Larger than any 10-minute voicemail in the formats below (WAV 48 kHz stereo is ~115 MB).
MAX_BYTES = 128 * 1024 * 1024
_BLOCK_SECONDS = 2

#: MIME type (parameters removed) → the libsndfile containers it may hold.
_CONTAINERS = {
    "audio/ogg": {"OGG"},
    "audio/opus": {"OGG"},
    "application/ogg": {"OGG"},
    "audio/wav": {"WAV", "WAVEX", "RF64"},
    "audio/x-wav": {"WAV", "WAVEX", "RF64"},
    "audio/wave": {"WAV", "WAVEX", "RF64"},
    "audio/vnd.wave": {"WAV", "WAVEX", "RF64"},
    "audio/mpeg": {"MP3"},
    "audio/mp3": {"MP3"},
    "audio/flac": {"FLAC"},
    "audio/x-flac": {"FLAC"},
}


class UnplayableAudio(Exception):
    """An attachment that cannot be played; ``reason`` says why, for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def playable_types() -> frozenset[str]:
    """The MIME types :func:`decode_to_sln` accepts."""
    return frozenset(_CONTAINERS)


def decode_to_sln(data: bytes, mime_type: str, out_path: Path, *,
                  max_seconds: float = MAX_SECONDS) -> float:
    """Decode `data` (declared as `mime_type`) to raw 8 kHz s16le mono at `out_path`.

    Blocking: run it off the event loop. Returns the duration in seconds.
    Raises :class:`UnplayableAudio` and leaves nothing at `out_path` when the
    data cannot be played.
    """
    kind = mime_type.split(";", 1)[0].strip().lower()
    containers = _CONTAINERS.get(kind)
    if containers is None:
        raise UnplayableAudio(f"attachment type {kind!r} is not audio that can be played "
                              f"(accepted: {', '.join(sorted(_CONTAINERS))})")
    if not data:
        raise UnplayableAudio("the audio attachment is empty")
    if len(data) > MAX_BYTES:
        raise UnplayableAudio(f"the audio attachment is {len(data)} bytes, more than the "
                              f"{MAX_BYTES} bytes a voicemail can be")
    out_path = Path(out_path)
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".tmp-", suffix=".sln")
    try:
        with os.fdopen(fd, "wb") as out:
            samples = _decode(data, kind, containers, out, max_seconds)
        if samples == 0:
            raise UnplayableAudio(f"the {kind} attachment holds no audio")
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return samples / TELEPHONE_RATE


def _decode(data: bytes, kind: str, containers: set[str], out: io.BufferedWriter,
            max_seconds: float) -> int:
    try:
        sound = soundfile.SoundFile(io.BytesIO(data))
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:
        raise UnplayableAudio(f"the {kind} attachment cannot be decoded: {_why(exc)}") from exc
    with sound:
        if sound.format not in containers:
            raise UnplayableAudio(f"the attachment declared {kind} holds {sound.format} data")
        rate = sound.samplerate
        if rate <= 0 or sound.channels <= 0:
            raise UnplayableAudio(f"the {kind} attachment has no usable rate or channels")
        if sound.frames > max_seconds * rate + rate:  # known up front for WAV and Ogg
            raise UnplayableAudio(f"the {kind} attachment lasts {sound.frames / rate:.0f} s, "
                                  f"more than the {max_seconds:.0f} s that can be played")
        stream = None if rate == TELEPHONE_RATE else soxr.ResampleStream(
            rate, TELEPHONE_RATE, 1, dtype="float32", quality="HQ")
        limit = int(max_seconds * TELEPHONE_RATE)
        written = 0
        while True:
            try:
                block = sound.read(_BLOCK_SECONDS * rate, dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError) as exc:
                raise UnplayableAudio(f"the {kind} attachment is corrupt: {_why(exc)}") from exc
            last = len(block) == 0
            mono = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
            mono = numpy.ascontiguousarray(mono, dtype=numpy.float32)
            low = mono if stream is None else stream.resample_chunk(mono, last=last)
            written += len(low)
            if written > limit:
                raise UnplayableAudio(f"the {kind} attachment lasts more than the "
                                      f"{max_seconds:.0f} s that can be played")
            pcm = numpy.clip(numpy.rint(low * 32767.0), -32768, 32767).astype("<i2")
            out.write(pcm.tobytes())
            if last:
                return written


def _why(exc: Exception) -> str:
    # LibsndfileError's str() names the BytesIO object; its error_string is the useful part.
    return getattr(exc, "error_string", None) or str(exc)
