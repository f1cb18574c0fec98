"""`mailcall route --explain` and `mailcall mail --explain` with a real store file: the plan
obeys the user's own choices and each value says where it came from (profile, policy file,
or the user's choice with when, from where and by whom)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from tests.userstore.test_cli import mailcall
from tests.userstore.test_obeyed_calls import _office_day

TODAY = datetime.now().date()
UNTIL = (TODAY + timedelta(days=20)).isoformat()
AT = _office_day(TODAY).replace(tzinfo=None).isoformat(timespec="minutes")
"""In office hours (Paris; `--at` is read in the organisation's zone) during the absence."""
AFTER = _office_day(TODAY + timedelta(days=22)).replace(tzinfo=None).isoformat(
    timespec="minutes")


def prepare(store):
    for args in (("user", "set", "alice", "reroute.mobile=off", "preferred_medium=email"),
                 ("absence", "set", "alice", "--until", UNTIL, "--backup", "carole",
                  "--message", "En congé")):
        done = mailcall(store, *args)
        assert done.returncode == 0, done.stderr


def test_route_explain_names_the_source_of_each_value(store_path):
    prepare(store_path)
    shown = mailcall(store_path, "route", "--to", "201", "--at", AT, "--explain")
    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "  1. ring carole: Dial(PJSIP/203,20)  -- backup of alice" in out
    assert "greeting: absence" in out
    assert "Where the values came from:\n  alice (profile sales):\n" in out
    lines = out.splitlines()
    mobile = next(x for x in lines if x.strip().startswith("reroute.mobile"))
    assert "off  <- user's choice at " in mobile and "from cli (by it:admin)" in mobile
    assert any(x.strip().startswith("notify.media") and x.endswith("<- profile sales")
               for x in lines)
    assert any(x.strip().startswith("backups") and x.endswith(
        "<- policy file (users.alice.backups)") for x in lines)
    absence = next(x for x in lines if x.strip().startswith("absence #"))
    assert f"to {UNTIL} 00:00, backup carole  <- user's choice at" in absence

    data = json.loads(mailcall(store_path, "route", "--to", "201", "--at", AT, "--explain",
                               "--json").stdout)
    assert data["steps"][0]["who"] == "carole"
    alice = data["sources"]["alice"]
    assert alice["settings"]["reroute.mobile"]["value"] is False
    assert alice["settings"]["reroute.mobile"]["source"].startswith("user's choice at ")
    assert alice["settings"]["greetings"]["source"] == "profile sales"
    assert alice["absences"][0]["backup"] == "carole"


def test_mail_explain_shows_the_auto_reply_and_its_sources(store_path):
    prepare(store_path)
    shown = mailcall(store_path, "mail", "--to", "alice@stockinox.example", "--from",
                     "bob@example.net", "--at", AT, "--explain")
    assert shown.returncode == 0, shown.stderr
    assert "auto-reply to bob@example.net" in shown.stdout
    assert "no notification: alice is absent" in shown.stdout
    medium = next(x for x in shown.stdout.splitlines()
                  if x.strip().startswith("preferred_medium"))
    assert "email  <- user's choice at " in medium
    after = mailcall(store_path, "mail", "--to", "alice@stockinox.example", "--from",
                     "bob@example.net", "--at", AFTER, "--json")
    (notify,) = [a for a in json.loads(after.stdout)["actions"] if a["kind"] == "notify"]
    assert (notify["medium"], notify["address"]) == ("email", "alice@stockinox.example")


def test_a_damaged_store_explains_from_the_policy_alone_and_says_so(store_path):
    store_path.parent.mkdir(parents=True)
    store_path.write_bytes(b"not a store\n" * 500)
    shown = mailcall(store_path, "route", "--to", "201", "--at", AT, "--explain")
    assert shown.returncode == 0, shown.stderr
    assert "  1. ring alice: Dial(PJSIP/201,20)" in shown.stdout
    assert "  ! user store not applied: the user store " in shown.stdout
    assert str(store_path) in shown.stdout


def test_without_explain_a_damaged_store_is_said_on_stderr(store_path):
    store_path.parent.mkdir(parents=True)
    store_path.write_bytes(b"not a store\n" * 500)
    shown = mailcall(store_path, "mail", "--to", "alice@stockinox.example", "--json")
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["user"] == "alice"
    assert shown.stderr.startswith("mailcall: user store not applied, the plan follows the "
                                   "policy file alone: the user store ")
