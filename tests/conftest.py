"""Fixtures shared by every test folder: the real Dovecot and the recorded Asterisk material."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

# Defined in tests/support; tests/live and tests/mwi import them from here.
from tests.support import MEDIA, REPO, SHARED, TRACES  # noqa: F401
from tests.support.dovecot import Dovecot, available, start_private


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"recorded material not found at {SHARED}; set MAILCALL_SHARED")
    return SHARED


@pytest.fixture
def dovecot_factory():
    """Start real Dovecot instances: ``dovecot_factory(plugin={...}, users=[...])``."""
    if not available():
        pytest.fail("Dovecot is not installed or not running as root: run .ci/run (it installs it)")
    started: list[Dovecot] = []

    def start(plugin: dict[str, str] | None = None, users=("alice@example.test",), extra: str = ""):
        d = start_private(plugin, users, extra)
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
        shutil.rmtree(d.root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_factory) -> Dovecot:
    return dovecot_factory()
