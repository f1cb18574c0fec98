"""Fixtures: a real Dovecot with the example company's users, and the page served for real."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.web.harness import USERS, WebHarness


@pytest.fixture
def imap_server(dovecot_factory):
    # As docs/web.md asks: mailcall's address is trusted, so Dovecot takes the browser's
    # address from the page (ID x-originating-ip) and skips its per-address penalty for
    # mailcall itself. The 2 s delay of each failure (auth_failure_delay) is cut short so
    # that the lockout tests do not take a minute; the page's own limits are what is tested.
    return dovecot_factory(users=USERS, extra=(
        "auth_failure_delay = 0\nlogin_trusted_networks = 127.0.0.0/8\n"))


@pytest.fixture
def site(tmp_path: Path, imap_server):
    harness = WebHarness(tmp_path, imap_server.imap_port).start()
    yield harness
    harness.stop()
