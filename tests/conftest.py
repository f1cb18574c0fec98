"""Fixtures shared by every test folder: the real Dovecot and the recorded Asterisk material.

Async tests (``async def test_...``) run here too, each in a fresh event loop with a
120 s limit: no pytest-asyncio needed.
"""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

# Defined in tests/support; tests/live and tests/mwi import them from here.
from tests.support import MEDIA, REPO, SHARED, TRACES  # noqa: F401
from tests.support.dovecot import Dovecot, DovecotFactory, available

ASYNC_TEST_TIMEOUT = 120.0


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Run a coroutine test in its own new loop, so no loop state passes between tests."""
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), ASYNC_TEST_TIMEOUT))
        return True
    return None


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
    factory = DovecotFactory()
    yield factory
    factory.stop_all()


@pytest.fixture
def dovecot(dovecot_factory) -> Dovecot:
    return dovecot_factory()
