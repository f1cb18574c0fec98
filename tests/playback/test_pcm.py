"""Resampling to 8 kHz keeps the telephone band and drops what would alias."""

from __future__ import annotations

import numpy
import pytest

from mailcall.playback import TELEPHONE_RATE, to_telephone, write_sln


def power_at(samples: numpy.ndarray, hz: float) -> float:
    spectrum = numpy.abs(numpy.fft.rfft(samples.astype(float)))
    freqs = numpy.fft.rfftfreq(len(samples), 1 / TELEPHONE_RATE)
    return float(spectrum[numpy.argmin(numpy.abs(freqs - hz))])


def test_speech_band_is_kept_and_high_frequencies_do_not_fold_back():
    rate = 22050  # espeak-ng
    t = numpy.arange(rate) / rate
    # 1 kHz (speech band) + 6 kHz (above 4 kHz: a plain decimation would fold it to 2 kHz).
    signal = (numpy.sin(2 * numpy.pi * 1000 * t) + numpy.sin(2 * numpy.pi * 6000 * t)) * 8000
    out = to_telephone(signal.astype(numpy.int16), rate)
    assert out.dtype == numpy.int16 and len(out) == TELEPHONE_RATE
    assert power_at(out, 2000) < power_at(out, 1000) / 100


def test_write_sln_is_raw_s16le_and_atomic(tmp_path):
    samples = (numpy.sin(numpy.arange(48000) / 10) * 1000).astype(numpy.int16)
    out = tmp_path / "x.sln"
    assert write_sln(samples, 48000, out) == pytest.approx(1.0, abs=0.001)
    assert out.stat().st_size == 2 * TELEPHONE_RATE
    assert [p.name for p in tmp_path.iterdir()] == ["x.sln"]
    with pytest.raises(ValueError, match="mono"):
        write_sln(numpy.zeros((10, 2), numpy.int16), 8000, tmp_path / "y.sln")
    assert not (tmp_path / "y.sln").exists()
