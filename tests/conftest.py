"""Fixtures shared by every test folder: the real Dovecot and the recorded Asterisk material."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.dovecot import Dovecot, available

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MAILCALL_SHARED", REPO.parent / "shared"))
TRACES = SHARED / "asterisk" / "traces"
MEDIA = SHARED / "asterisk" / "media"


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
        # Not under pytest's tmp dir: that is 0700 and Dovecot's auth process
        # (user dovecot) must reach the passwd file.
        root = Path(tempfile.mkdtemp(prefix="mailcall-dovecot-"))
        os.chmod(root, 0o755)  # noqa: S103 - Dovecot processes must traverse it
        d = Dovecot(root=root, plugin=dict(plugin or {}), extra=extra)
        d.write_config()
        for u in users:
            d.add_user(u)
        d.start()
        started.append(d)
        return d

    yield start
    for d in started:
        d.stop()
        shutil.rmtree(d.root, ignore_errors=True)


@pytest.fixture
def dovecot(dovecot_factory) -> Dovecot:
    return dovecot_factory()
