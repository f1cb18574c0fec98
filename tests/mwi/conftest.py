"""Fixtures of the lamp's tests: a real Dovecot set up for mailcall's MWI (support.py).

Async tests run through tests/conftest.py's runner.
"""

from __future__ import annotations

import shutil

import pytest

from tests.mwi.support import start_mail


@pytest.fixture
def mail(dovecot_factory):
    m = start_mail(dovecot_factory)
    yield m
    shutil.rmtree(m.work, ignore_errors=True)
