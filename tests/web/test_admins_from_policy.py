"""Who sees IT's view is configured in the policy (``[organisation] admins``, issue #14);
web.toml's older ``admins`` still counts, the two combined. Over HTTP, passwords checked
by a real Dovecot."""

from __future__ import annotations

import pytest

from tests.web.client import Client
from tests.web.harness import CHANGES, WebHarness


@pytest.fixture
def site(tmp_path, imap_server):
    # The policy names carole; web.toml (the old place) names alice; david, the example
    # policy's admin, is replaced by carole here and so is no admin.
    changes = {**CHANGES, "organisation": {"admins": ["carole"]}}
    harness = WebHarness(tmp_path, imap_server.imap_port, admins=("alice",),
                         changes=changes).start()
    yield harness
    harness.stop()


def test_policy_admins_and_web_toml_admins_both_see_it_view(site):
    assert site.runtime.policy.admins == ("carole",)
    for who, status in (("carole", 200), ("alice", 200), ("david", 403), ("bernard", 403)):
        c = Client(site.url)
        assert c.login(f"{who}@stockinox.example").status == 200
        assert c.get("/admin").status == status, who
        assert ('<a href="/admin">' in c.get("/").text) is (status == 200), who  # the link
