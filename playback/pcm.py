"""Samples at any rate → 8 kHz signed linear, and the atomic ``.sln`` write.

Resampling goes through libsoxr (the ``soxr`` package): it is SoX's own
resampler as a library, so the quality is what ``sox -r 8000`` gave before,
with no process per file; its band-limited filter keeps espeak-ng's 22050 Hz
and Opus's 48 kHz output free of aliasing above 4 kHz, which a plain
decimation would fold back into the telephone band.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy
import soxr

TELEPHONE_RATE = 8000
#: Chunk files hold mail content: readable by the owner and the folder's group (Asterisk).
FILE_MODE = 0o640


def to_telephone(samples: numpy.ndarray, rate: int) -> numpy.ndarray:
    """Mono samples (int16 or float in [-1, 1]) at `rate` → int16 at 8 kHz."""
    if samples.ndim != 1:
        raise ValueError(f"mono samples expected, got shape {samples.shape}")
    if rate <= 0:
        raise ValueError(f"sample rate must be positive, got {rate}")
    if rate == TELEPHONE_RATE:
        if samples.dtype == numpy.int16:
            return samples
        return _float_to_int16(samples.astype(numpy.float32))
    if samples.dtype == numpy.int16:
        # soxr takes int16 directly and returns int16 (clipped, with its own rounding).
        return soxr.resample(samples, rate, TELEPHONE_RATE, quality="HQ")
    return _float_to_int16(soxr.resample(samples.astype(numpy.float32), rate,
                                         TELEPHONE_RATE, quality="HQ"))


def _float_to_int16(samples: numpy.ndarray) -> numpy.ndarray:
    return numpy.clip(numpy.rint(samples * 32767.0), -32768, 32767).astype(numpy.int16)


def write_sln(samples: numpy.ndarray, rate: int, out_path: Path) -> float:
    """Write `samples` as raw 8 kHz s16le at `out_path`; return its duration in seconds.

    The file appears whole or not at all (temporary file, then rename), so
    Asterisk never plays half a chunk.
    """
    pcm = to_telephone(samples, rate)
    write_raw(pcm.astype("<i2", copy=False).tobytes(), Path(out_path))
    return len(pcm) / TELEPHONE_RATE


def write_raw(data: bytes, out_path: Path) -> None:
    """`data` at `out_path`, atomically, with :data:`FILE_MODE`."""
    fd, tmp = tempfile.mkstemp(dir=out_path.parent, prefix=".tmp-", suffix=".sln")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, out_path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
