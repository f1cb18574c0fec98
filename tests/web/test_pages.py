"""The page's behaviour over HTTP: absences, refusals next to fields, CSRF, escaping, IT's view.

A real Dovecot checks the passwords; the store is a real SQLite file; the plan comes
from the routing core with the store applied, as the router gets it.
"""

from __future__ import annotations

import html
import re

import markupsafe
import pytest

from mailcall.core.decisions.plans import CallRequest, Ring, Voicemail
from mailcall.core.decisions.routing import plan_call
from mailcall.userstore.overlay import decision_policy
from mailcall.userstore.sqlite_store import SqliteStore
from tests.web.client import Client
from tests.web.harness import HOSTILE_GROUP, HOSTILE_NAME, NOW, WebHarness


def audit(site, user=None):
    store = SqliteStore(site.store_path)
    try:
        return store.audit(user)
    finally:
        store.close()


def plan(reply) -> str:
    m = re.search(r'<p id="plan">(.*?)</p>', reply.text, re.S)
    assert m, reply.text[:2000]
    return html.unescape(m.group(1))


@pytest.fixture
def alice(site):
    c = Client(site.url)
    assert c.login("alice@stockinox.example").status == 200
    c.get("/?lang=en")  # her language is French (the organisation's); these tests read English
    return c


def test_absence_changes_the_plan_and_what_the_router_decides(site, alice):
    page = alice.get("/")
    assert plan(page) == ("Your phone rings for 20 s. If you do not answer within 20 s: your "
                          f"mobile, then Bernard Petit, then {HOSTILE_GROUP}, then voicemail.")
    r = alice.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12",
                                "backup": "bernard", "message": "Back on the 12th."})
    assert r.status == 200 and "Your absence is saved" in r.text
    assert plan(r) == ("You are away until 2026-12-12 00:00: your phone does not ring. Calls go "
                       f"to: Bernard Petit, then {HOSTILE_GROUP}, then voicemail with your "
                       "absence greeting.")
    # The same fact as the router obeys it (the user-store service's view of the policy,
    # read in the service's own thread: its SQLite connection belongs to that thread).
    async def routed():
        return plan_call(decision_policy(site.runtime),
                         CallRequest(callee="201", caller="", at=NOW))

    decided = site.run(routed())
    assert isinstance(decided.steps[0], Ring) and decided.steps[0].who == "bernard"
    assert isinstance(decided.steps[-1], Voicemail) and decided.steps[-1].greeting == "absence"
    [entry] = audit(site, "alice")
    assert (entry.field, entry.stamp.origin, entry.stamp.actor) == ("absence", "web", "alice")


@pytest.mark.parametrize(("form", "field", "words"), [
    ({"until": "2026-02-31"}, "absence-until", "is not a date"),
    ({"until": "2026-11-30"}, "absence-until", "is in the past"),
    ({"until": "2026-12-05", "from": "2026-12-08"}, "absence-until", "before it starts"),
    ({"until": "2026-12-12", "backup": "alice"}, "absence-backup", "your own backup"),
    ({"until": "2026-12-12", "backup": "nobody"}, "absence-backup", "nobody of that name"),
    ({"until": "2026-12-12", "message": "x" * 1001}, "absence-message", "at most 1000"),
    ({"until": "2026-12-12", "message": "hi\x1b[2Jthere"}, "absence-message",
     "control character (U+001B"),
])
def test_bad_values_are_refused_next_to_their_field_and_nothing_is_saved(site, alice, form,
                                                                          field, words):
    page = alice.get("/")
    r = alice.post("/absence", {"csrf": page.csrf(), **form})
    assert r.status == 400
    m = re.search(rf'<span class="error" id="err-{field}">(.*?)</span>', r.text, re.S)
    assert m and words in html.unescape(m.group(1)), r.text
    assert f'aria-describedby="err-{field}"' in r.text
    assert audit(site) == []
    # What the user typed is kept in the form, escaped, so they can correct it.
    if "until" in form:
        assert f'value="{html.escape(form["until"])}"' in r.text


def test_a_backup_the_profile_does_not_allow_is_not_offered_and_refused(site):
    david = Client(site.url)  # reception: 'reroute' is locked by the profile
    page = david.login("david@stockinox.example")
    assert 'id="backup"' not in page.text
    assert "does not reroute calls while you are away" in page.text
    r = david.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12",
                                "backup": "carole"})
    assert r.status == 400 and "leaves the choice of who takes your calls to IT" in r.text
    assert audit(site) == []


def test_every_post_needs_the_sessions_csrf_token(site, alice):
    r = alice.post("/absence", {"until": "2026-12-12"})
    assert r.status == 403 and "did not come from this page" in r.text
    mallory = Client(site.url)
    foreign = mallory.login("bernard@stockinox.example").csrf()
    r = alice.post("/absence", {"csrf": foreign, "until": "2026-12-12"})
    assert r.status == 403
    # The login form too: a forged login cannot put the victim in the attacker's session.
    r = Client(site.url).post("/login", {"login": "bernard", "password": "secret"})
    assert r.status == 403
    assert audit(site) == []


def test_outside_text_is_escaped_everywhere(site, alice):
    page = alice.get("/")
    hostile = '<script>alert("msg")</script>'
    r = alice.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12",
                                "backup": "carole", "message": hostile})
    assert r.status == 200
    for text in (HOSTILE_NAME, HOSTILE_GROUP, hostile):
        assert text not in r.text
        assert str(markupsafe.escape(text)) in r.text  # shown, as text
    assert "<script" not in r.text and "onerror=" not in r.text.replace("onerror=&#34;", "")
    # IT's view shows the audit entry's message, escaped too.
    david = Client(site.url)
    admin = david.login("david@stockinox.example")
    assert "IT view" in admin.text
    view = david.get("/admin?user=alice")
    assert hostile not in view.text and "&lt;script&gt;" in view.text
    assert "<script" not in view.text


def test_security_headers(site, alice):
    r = alice.get("/")
    assert "default-src 'none'" in r.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"
    assert 'autocomplete="current-password"' in Client(site.url).get("/login").text


def test_it_view_is_for_admins_only_and_clears_a_users_settings(site, alice):
    page = alice.get("/")
    alice.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12"})
    assert alice.get("/admin").status == 403
    assert alice.post("/admin/clear", {"csrf": page.csrf(), "user": "bernard"}).status == 403
    assert "IT view" not in alice.get("/").text

    david = Client(site.url)
    david.login("david@stockinox.example")
    view = david.get("/admin?user=alice")
    assert view.status == 200 and "#1 2026-12-01 10:00" in view.text
    assert "Users with settings of their own: 1" in view.text
    assert '<a href="/admin?user=alice">alice</a>' in view.text
    r = david.post("/admin/clear", {"csrf": view.csrf(), "user": "alice"})
    assert r.status == 200 and "Settings cleared." in r.text
    latest = audit(site, "alice")[0]
    assert (latest.stamp.actor, latest.stamp.origin, latest.new) == ("it:david", "web", None)
    assert "No absence is set." in alice.get("/").text


def test_languages_browser_user_and_choice(site):
    assert "Connexion" in Client(site.url, language="fr-FR,fr;q=0.9").get("/login").text
    assert "Log in" in Client(site.url, language="de, en;q=0.5").get("/login").text
    alice = Client(site.url, language="en")
    assert "Bonjour Alice Martin" in alice.login("alice").text  # her language: fr
    assert "Hello Alice Martin" in alice.get("/?lang=en").text  # her choice, kept
    assert "Hello Alice Martin" in alice.get("/").text


def test_an_unusable_store_makes_the_page_read_only_and_saves_nothing(tmp_path, imap_server,
                                                                      caplog):
    store = tmp_path / "state" / "users" / "store.sqlite"
    store.parent.mkdir(parents=True)
    store.write_bytes(b"this is not a database" * 100)
    harness = WebHarness(tmp_path, imap_server.imap_port).start()
    try:
        c = Client(harness.url)
        c.login("alice@stockinox.example")
        page = c.get("/?lang=en")
        assert page.status == 200 and "cannot be changed right now" in page.text
        assert 'id="absence-form"' not in page.text
        assert plan(page).startswith("Your phone rings for 20 s.")  # the policy alone
        r = c.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12"})
        assert r.status == 503
        # The settings are shown, not offered; their forms save nothing either.
        assert "Tell my mobile about new mail" in page.text
        assert 'id="save-settings"' not in page.text and 'id="pin-form"' not in page.text
        for path, form in (("/settings", [("fields", "notify.mail")]),
                           ("/pin", [("pin", "2468"), ("pin2", "2468")]),
                           ("/settings/clear", [("field", "notify.mail")])):
            assert c.post(path, [("csrf", page.csrf()), *form]).status == 503
        assert store.read_bytes().startswith(b"this is not a database")
        assert any("read-only" in rec.getMessage() and str(store) in rec.getMessage()
                   for rec in caplog.records)
    finally:
        harness.stop()


def test_outside_opening_hours_the_sentence_says_so(tmp_path, imap_server):
    evening = NOW.replace(hour=19)  # 20:00 in Paris
    harness = WebHarness(tmp_path, imap_server.imap_port, clock=lambda: evening).start()
    try:
        c = Client(harness.url)
        c.login("alice")
        page = c.get("/?lang=en")
        # Bernard and the reception keep the same hours: nobody is left to ring.
        assert plan(page) == ("It is outside your opening hours: your phone does not ring. "
                              "Calls go to: voicemail with your 'unavailable' greeting.")
    finally:
        harness.stop()


def test_an_absence_without_its_end_is_refused_next_to_the_field(site, alice):
    page = alice.get("/")
    r = alice.post("/absence", {"csrf": page.csrf(), "until": " ", "backup": "bernard"})
    assert r.status == 400
    assert 'id="err-absence-until">give the day you are back' in r.text
    assert audit(site) == []


def test_another_users_absence_id_removes_nothing_of_theirs(site, alice):
    bernard = Client(site.url)
    assert bernard.login("bernard@stockinox.example").status == 200
    page = bernard.get("/?lang=en")
    r = bernard.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12",
                                  "message": "Bernard au salon"})
    assert r.status == 200 and "Your absence is saved" in r.text
    store = SqliteStore(site.store_path)
    try:
        theirs = store.read("bernard").absences
    finally:
        store.close()
    assert len(theirs) == 1
    mine = alice.get("/")
    r = alice.post("/absence/clear", {"csrf": mine.csrf(), "id": str(theirs[0].id)})
    assert r.status == 400
    assert "This absence no longer exists" in r.text and "Your absence is removed" not in r.text
    store = SqliteStore(site.store_path)
    try:
        assert store.read("bernard").absences == theirs
        assert store.read("alice").absences == ()
    finally:
        store.close()
    assert not [e for e in audit(site, "bernard") if e.stamp.actor == "alice"]
