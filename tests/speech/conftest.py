"""Fixtures of the speech tests: the real eSpeak NG engine, loaded in-process.

Async tests run through tests/conftest.py's runner.
"""

from __future__ import annotations

import numpy
import pytest

from mailcall.speech.espeak import EspeakEngine


@pytest.fixture(scope="session")
def espeak() -> EspeakEngine:
    engine = EspeakEngine()
    if not engine.available:
        pytest.fail(f"{engine.problem} (.ci/apt-packages.txt lists libespeak-ng1)")
    return engine


def rms(samples: numpy.ndarray) -> float:
    """Level of int16 samples, 0..1."""
    if not len(samples):
        return 0.0
    return float(numpy.sqrt(numpy.mean(numpy.square(samples.astype(numpy.float64))))) / 32768


def read_sln(path) -> numpy.ndarray:
    return numpy.frombuffer(path.read_bytes(), dtype="<i2")
