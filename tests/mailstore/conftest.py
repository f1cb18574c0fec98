"""Fixtures of the mailstore tests: a real Dovecot filled through mailcall's deposit path.

Async tests run in a fresh event loop each (no pytest-asyncio needed).
"""

from __future__ import annotations

import asyncio
import inspect
import shutil

import pytest

from tests.mailstore.support import start_phone_mail


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    if inspect.iscoroutinefunction(pyfuncitem.obj):
        args = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
        asyncio.run(asyncio.wait_for(pyfuncitem.obj(**args), 120))
        return True
    return None


@pytest.fixture
def phone_mail(dovecot_factory):
    m = start_phone_mail(dovecot_factory)
    yield m
    shutil.rmtree(m.work, ignore_errors=True)
