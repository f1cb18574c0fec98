"""Fixtures of the mailstore tests: a real Dovecot filled through mailcall's deposit path.

Async tests run through tests/conftest.py's runner.
"""

from __future__ import annotations

import shutil

import pytest

from tests.mailstore.support import start_phone_mail


@pytest.fixture
def phone_mail(dovecot_factory):
    m = start_phone_mail(dovecot_factory)
    yield m
    shutil.rmtree(m.work, ignore_errors=True)
