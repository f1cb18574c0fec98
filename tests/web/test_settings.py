"""The settings form over HTTP: every refinement the profile grants, changed within it.

A real Dovecot checks the passwords, the store is a real SQLite file and the plan
comes from the routing core with the store applied, as the router gets it. Each
refusal is the store's own (the one ceiling check), shown next to its field in
the page's language, and nothing of a refused form is saved.
"""

from __future__ import annotations

import contextlib
import html
import logging
import re
import sqlite3
import threading

import markupsafe
import pytest

from mailcall.core.decisions.plans import CallRequest, Ring
from mailcall.core.decisions.routing import plan_call
from mailcall.core.policy.pins import verify_pin
from mailcall.userstore.overlay import decision_policy
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.web.client import Client, Reply
from tests.web.harness import HOSTILE_GROUP, NOW
from tests.web.test_pages import audit, plan

ALICE_PLAN = ("Your phone rings for 20 s. If you do not answer within 20 s: your mobile, then "
              f"Bernard Petit, then {HOSTILE_GROUP}, then voicemail.")


def stored(site, user: str) -> dict:
    store = SqliteStore(site.store_path)
    try:
        return {k: v.value for k, v in store.read(user).values.items()}
    finally:
        store.close()


def error(reply: Reply, field: str) -> str:
    m = re.search(rf'<span class="error" id="err-{field}">(.*?)</span>', reply.text, re.S)
    assert m, f"no message next to {field}:\n{reply.text}"
    return html.unescape(m.group(1))


def now_shown(reply: Reply, field: str) -> str:
    m = re.search(rf'<span class="now" id="now-{field}">(.*?)</span>', reply.text, re.S)
    assert m, reply.text
    return html.unescape(m.group(1))


def form_of(page: Reply, **changes) -> list[tuple[str, str]]:
    """The settings form as the page rendered it (every control's current state), with
    `changes` ({name: value or list of values}) replacing fields."""
    m = re.search(r'<form method="post" action="/settings" id="settings-form">(.*?)</form>',
                  page.text, re.S)
    assert m, page.text
    body = m.group(1)
    fields: list[tuple[str, str]] = []
    for tag in re.findall(r"<input[^>]*>", body):
        name = re.search(r'name="([^"]*)"', tag)
        value = re.search(r'value="([^"]*)"', tag)
        if not name:
            continue
        if 'type="checkbox"' in tag and " checked" not in tag:
            continue
        fields.append((html.unescape(name.group(1)), html.unescape(value.group(1))))
    for sel in re.findall(r'<select[^>]*name="([^"]*)"[^>]*>(.*?)</select>', body, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', sel[1])
        fields.append((html.unescape(sel[0]), html.unescape(chosen.group(1)) if chosen else ""))
    for name, value in changes.items():
        fields = [f for f in fields if f[0] != name]
        for v in value if isinstance(value, list) else [value]:
            fields.append((name, v))
    return fields


def post(client: Client, path: str, fields: list[tuple[str, str]]) -> Reply:
    return client.post(path, fields)


@pytest.fixture
def alice(site):
    c = Client(site.url)
    assert c.login("alice@stockinox.example").status == 200
    c.get("/?lang=en")
    return c


@pytest.fixture
def alice_fr(site):
    c = Client(site.url, language="fr")
    assert c.login("alice@stockinox.example").status == 200  # her language: fr
    return c


def test_the_page_shows_every_setting_with_its_control_value_and_source(site, alice):
    page = alice.get("/")
    # Checkboxes for what the profile lets her switch, with the value in effect.
    assert re.search(r'<input type="checkbox" id="f-notify-mail" name="notify.mail" value="on" '
                     r'checked>', page.text)
    assert 'id="f-reroute-mobile"' in page.text
    assert 'id="f-notify-media-sms"' in page.text and 'id="f-notify-media-email"' in page.text
    assert 'id="f-greetings-absence"' in page.text
    assert '<select id="f-preferred_medium" name="preferred_medium">' in page.text
    # Backups in order: one position per backup IT gives her, none other.
    assert re.search(r'name="pos:bernard">.*?<option value="1" selected>', page.text, re.S)
    assert re.search(r'name="pos:@reception">.*?<option value="2" selected>', page.text, re.S)
    # The backups' names come from the policy (a hostile group name here): text, escaped.
    label = f"Position of {markupsafe.escape(HOSTILE_GROUP)}</label>"
    assert label in page.text and HOSTILE_GROUP not in page.text
    # Her profile grants notify.hours = office only: shown, not changeable, with why.
    assert 'name="notify.hours"' not in page.text
    why = re.search(r'id="why-notify-hours">(.*?)</small>', page.text, re.S)
    assert why and "gives only this choice: during office hours" in html.unescape(why.group(1))
    assert now_shown(page, "preferred_medium") == "Now: SMS"
    assert "set by IT (policy file)" in page.text  # preferred_medium is users.alice's
    assert "set by your profile (sales)" in page.text
    assert 'id="pin-form"' in page.text and 'autocomplete="new-password"' in page.text


def test_a_notification_and_the_backup_order_change_the_value_and_the_plan(site, alice):
    page = alice.get("/")
    assert plan(page) == ALICE_PLAN
    r = post(alice, "/settings", form_of(page, **{
        "notify.mail": [],  # unticked
        "reroute.mobile": [],
        "pos:bernard": "2", "pos:@reception": "1"}))
    assert r.status == 200 and "Your settings are saved" in r.text, r.text
    assert now_shown(r, "notify-mail") == "Now: off"
    assert now_shown(r, "backups") == f"Now: {HOSTILE_GROUP}, Bernard Petit"
    assert plan(r) == ("Your phone rings for 20 s. If you do not answer within 20 s: "
                       f"{HOSTILE_GROUP}, then Bernard Petit, then voicemail.")
    assert "set by you, 2026-12-01 10:00 (web)" in r.text
    assert stored(site, "alice") == {"notify.mail": False, "reroute.mobile": False,
                                     "backups": ["@reception", "bernard"]}
    # Only what changed became her choice; the audit says who, from where.
    entries = audit(site, "alice")
    assert sorted(e.field for e in entries) == ["backups", "notify.mail", "reroute.mobile"]
    assert {(e.stamp.origin, e.stamp.actor) for e in entries} == {("web", "alice")}
    # The router obeys the same order (its view is read in the service's own thread).
    async def routed():
        return plan_call(decision_policy(site.runtime), CallRequest(callee="201", caller="",
                                                                    at=NOW))

    decided = site.run(routed())
    rung = [s.who for s in decided.steps if isinstance(s, Ring)]
    assert rung == ["alice", "@reception", "bernard"], rung

    # Dropping a backup ("not used"), then IT's value back for the order.
    r = post(alice, "/settings", form_of(r, **{"pos:bernard": ""}))
    assert stored(site, "alice")["backups"] == ["@reception"]
    r = post(alice, "/settings/clear", [("csrf", r.csrf()), ("field", "backups")])
    assert r.status == 200 and "IT&#39;s value applies again" in r.text
    assert "backups" not in stored(site, "alice")
    assert now_shown(r, "backups") == f"Now: Bernard Petit, {HOSTILE_GROUP}"


def test_an_unchanged_form_saves_nothing(site, alice):
    page = alice.get("/")
    r = post(alice, "/settings", form_of(page))
    assert r.status == 200 and "Nothing was changed." in r.text
    assert audit(site, "alice") == [] and stored(site, "alice") == {}


@pytest.mark.parametrize(("changes", "field", "fr"), [
    ({"notify.media": []}, "notify-media", "Cochez au moins un moyen de notification"),
    ({"notify.media": ["email"]}, "notify-media",
     "Cela retire SMS, le moyen par lequel vos notifications partent"),
    ({"notify.media": ["sms"], "preferred_medium": "email"}, "preferred_medium",
     "Le moyen e-mail ne fait pas partie de ceux que vous gardez (SMS)"),
])
def test_a_refused_value_is_told_in_french_next_to_its_field_and_nothing_saved(
        site, alice_fr, changes, field, fr):
    page = alice_fr.get("/")
    assert "Vos réglages et leur origine" in page.text
    r = post(alice_fr, "/settings", form_of(page, **{"notify.mail": [], **changes}))
    assert r.status == 400
    message = error(r, field)
    assert message.startswith(fr), message
    assert "profile" not in message and "users may" not in message  # not the store's English
    assert "Rien n&#39;a été enregistré : voir le message à côté du réglage." in r.text
    assert f'aria-describedby="err-{field}"' in r.text
    # Nothing saved, not even the valid part of the same form (notify.mail off).
    assert audit(site, "alice") == [] and stored(site, "alice") == {}
    assert plan(r) == plan(page)
    # The form shows what she asked for, so she can correct it: notify.mail stays unticked.
    assert re.search(r'id="f-notify-mail" name="notify.mail" value="on">', r.text)


def test_forged_values_are_refused_by_the_store_and_shown_as_text(site, alice):
    page = alice.get("/")
    hostile = '<img src=x onerror="alert(1)">'
    r = post(alice, "/settings", form_of(page, **{
        "preferred_medium": hostile, "notify.media": ["sms", hostile],
        f"pos:{hostile}": "3"}))
    assert r.status == 400
    assert "not given by your profile (sales)" in error(r, "notify-media")
    assert "nobody of that name" in error(r, "backups")
    assert hostile not in r.text and "<img" not in r.text
    assert str(markupsafe.escape(hostile)) in r.text  # shown, as text
    assert audit(site, "alice") == []


def test_a_position_that_is_not_offered_is_refused_next_to_the_order(site, alice):
    page = alice.get("/")
    r = post(alice, "/settings", form_of(page, **{"pos:bernard": "first"}))
    assert r.status == 400 and "Choose a position from the list" in error(r, "backups")
    assert audit(site, "alice") == []


def test_locked_settings_are_read_only_with_the_reason_and_a_forged_change_is_ignored(site):
    david = Client(site.url)  # reception: 'reroute' is locked by the profile
    page = david.login("david@stockinox.example")
    assert 'name="pos:' not in page.text and 'name="reroute.mobile"' not in page.text
    why = re.search(r'id="why-backups">(.*?)</small>', page.text, re.S)
    assert why and "Set by IT: your profile (reception) locks it" in html.unescape(why.group(1))
    # No notifications in his profile: the media are shown, not offered. Said without
    # "mobile": e-mail is one of the media a profile can send by.
    assert "Your profile sends you no notifications." in page.text
    assert "to your mobile" not in page.text
    r = post(david, "/settings", [("csrf", page.csrf()), ("fields", "backups"),
                                  ("pos:@reception", "1"), ("fields", "reroute.mobile"),
                                  ("reroute.mobile", "on")])
    assert r.status == 200 and "Nothing was changed." in r.text
    assert audit(site, "david") == []


def test_the_pin_is_typed_twice_stored_as_a_hash_and_never_logged(site, caplog):
    caplog.set_level(logging.DEBUG)
    carole = Client(site.url)
    page = carole.login("carole@stockinox.example")
    r = post(carole, "/pin", [("csrf", page.csrf()), ("pin", "482913"), ("pin2", "482914")])
    assert r.status == 400 and "Les deux codes diffèrent" in error(r, "pin")
    r = post(carole, "/pin", [("csrf", page.csrf()), ("pin", "12a4"), ("pin2", "12a4")])
    assert r.status == 400 and "4 à 12 chiffres" in error(r, "pin")
    assert audit(site, "carole") == []
    r = post(carole, "/pin", [("csrf", page.csrf()), ("pin", "482913"), ("pin2", "482913")])
    assert r.status == 200 and "Votre nouveau code PIN est enregistré" in r.text
    hashed = stored(site, "carole")["pin"]
    assert hashed.startswith("scrypt$") and verify_pin(hashed, "482913")
    assert "482913" not in r.text and hashed not in r.text
    [entry] = audit(site, "carole")
    assert (entry.field, entry.new, entry.stamp.origin) == ("pin", "(a PIN hash)", "web")
    logged = "\n".join(rec.getMessage() for rec in caplog.records)
    assert "carole changed their phone PIN" in logged
    assert "482913" not in logged and "482914" not in logged and hashed not in logged
    raw = site.store_path.read_bytes() + b"".join(
        p.read_bytes() for p in site.store_path.parent.glob("store.sqlite-*"))
    assert b"482913" not in raw
    # IT's view shows that a PIN is set, never its hash.
    david = Client(site.url)
    david.login("david@stockinox.example")
    view = david.get("/admin?user=carole")
    assert "(a PIN hash)" in view.text and hashed not in view.text


def test_every_settings_post_needs_the_sessions_csrf_token(site, alice):
    page = alice.get("/")
    for path, fields in (("/settings", form_of(page, **{"notify.mail": []})),
                         ("/settings/clear", [("field", "notify.mail")]),
                         ("/pin", [("pin", "1234"), ("pin2", "1234")])):
        forged = [f for f in fields if f[0] != "csrf"]
        assert post(alice, path, forged).status == 403
        assert post(alice, path, [*forged, ("csrf", "x" * 43)]).status == 403
    assert audit(site) == []


def test_web_and_phone_changing_the_same_setting_at_once(site, alice):
    """One wins, both are audited, the store is intact: the page's write (its store thread)
    and the phone menu's (its own connection to the same file, as the phone-menu service
    has) race on notify.voicemail."""
    page = alice.get("/")
    policy = site.runtime.policy
    start = threading.Barrier(2)
    results: dict[str, object] = {}

    def web_side() -> None:
        start.wait()
        results["web"] = post(alice, "/settings", form_of(page, **{"notify.voicemail": []}))

    def phone_side() -> None:
        phone = UserStore(SqliteStore(site.store_path), clock=lambda: NOW)
        try:
            start.wait()
            phone.set(policy, "alice", {"notify.voicemail": True}, actor="alice",
                      origin="phone")
            results["phone"] = "ok"
        except Exception as exc:  # reported by the assertion below
            results["phone"] = exc
        finally:
            phone.backend.close()

    threads = [threading.Thread(target=web_side), threading.Thread(target=phone_side)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert results["phone"] == "ok", results["phone"]
    reply = results["web"]
    assert isinstance(reply, Reply) and reply.status == 200, reply
    store = SqliteStore(site.store_path)
    try:
        final = store.read("alice").values["notify.voicemail"]
        entries = [e for e in store.audit("alice") if e.field == "notify.voicemail"]
    finally:
        store.close()
    winner = final.stamp.origin
    assert final.value is (winner == "phone"), final  # one of the two values, whole
    assert sorted(e.stamp.origin for e in entries) == ["phone", "web"], entries
    # The newest entry is the value that stayed: the audit's order is the commit order.
    assert entries[0].stamp.origin == winner
    assert entries[0].new == ("true" if winner == "phone" else "false")
    with contextlib.closing(sqlite3.connect(site.store_path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    # The page shows the winner's value.
    shown = now_shown(alice.get("/"), "notify-voicemail")
    assert shown == ("Now: on" if winner == "phone" else "Now: off")
