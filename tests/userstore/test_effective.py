"""Effective settings: the policy's values refined by the store, each with its source; stored
choices the policy no longer allows are set aside; the per-user index follows other writers."""

from __future__ import annotations

from mailcall.core.policy.load import compile_text
from mailcall.userstore.effective import effective_settings
from mailcall.userstore.index import RefinementIndex
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.userstore.conftest import EXAMPLE, NOW

CHOICE = "user's choice at 2026-12-01 10:00 CET from web (by alice)"


def sources(effective) -> dict[str, tuple]:
    return {k: (v.value, v.source) for k, v in effective.values.items()}


def test_nothing_refined_says_profile_or_policy_file(policy):
    assert sources(effective_settings(policy, "bernard")) == {
        "notify.mail": (True, "profile sales"),
        "notify.voicemail": (True, "profile sales"),
        "notify.media": (["sms", "email"], "profile sales"),
        "notify.hours": ("office", "profile sales"),
        "reroute.mobile": (False, "policy file (users.bernard.overrides.reroute.mobile)"),
        "greetings": (["unavailable", "busy", "absence"], "profile sales"),
        "backups": (["@reception"], "policy file (users.bernard.backups)"),
        "pin": ("not set", "policy file (no users.bernard.pin)"),
        "preferred_medium": ("sms", "profile sales (its first medium)"),
    }


def test_refinements_apply_with_their_source_and_time(store, policy):
    store.set(policy, "alice", {"notify.media": ["email"], "preferred_medium": "email",
                                "reroute.mobile": False, "backups": ["@reception", "bernard"],
                                "greetings": ["absence"]}, actor="alice", origin="web")
    effective = store.effective(policy, "alice")
    got = sources(effective)
    assert got["notify.media"] == (["email"], CHOICE)
    assert got["preferred_medium"] == ("email", CHOICE)
    assert got["reroute.mobile"] == (False, CHOICE)
    assert got["backups"] == (["@reception", "bernard"], CHOICE)
    assert got["notify.hours"] == ("office", "profile sales")
    assert got["pin"] == ("set", "policy file (users.alice.pin)")
    # what the router will obey: the policy's User with the refinements applied
    user = effective.user
    assert user.features.notify.media == ("email",)
    assert user.features.reroute.mobile is False
    assert user.features.greetings == ("absence",)
    assert user.backups == ("@reception", "bernard")
    assert (user.preferred_medium, user.notify_address) == ("email", "alice@stockinox.example")
    assert policy.users["alice"].features.reroute.mobile is True, "the snapshot is untouched"
    assert effective.to_dict()["settings"]["backups"] == {"value": ["@reception", "bernard"],
                                                          "source": CHOICE}


def test_choice_the_policy_no_longer_allows_is_set_aside(store, policy):
    store.set(policy, "alice", {"notify.media": ["email"], "preferred_medium": "email"},
              actor="alice", origin="web")
    narrowed = compile_text(EXAMPLE.read_text().replace(
        'media = ["sms", "email"]', 'media = ["sms"]'))
    effective = effective_settings(narrowed, "alice", store.refinements("alice"))
    media = effective.values["notify.media"]
    assert (media.value, media.source) == (["sms"], "profile sales")
    assert media.note == (
        f"the user's choice ['email'] ({CHOICE}) is set aside: email not granted by profile "
        "'sales' (notify.media = sms); users may only choose among those")
    medium = effective.values["preferred_medium"]
    assert (medium.value, medium.source) == ("sms",
                                             "policy file (users.alice.preferred_medium)")
    assert "is set aside: 'email' is not among the media profile 'sales' grants" in medium.note
    assert effective.user.features.notify.media == ("sms",)


def test_absence_backup_no_longer_allowed_is_dropped(store, policy):
    store.set_absence(policy, "alice", until="2026-12-12", backup="bernard", actor="alice",
                      origin="web")
    locked = compile_text(EXAMPLE.read_text().replace(
        'extends = "office"\ndescription = "Sales', 'extends = "office"\nlocked = ["reroute"]\n'
        'description = "Sales').replace(
        'overrides = { voicemail = { formats = ["wav"] }, reroute = { mobile = false } }', ''))
    (item,) = effective_settings(locked, "alice", store.refinements("alice")).absences
    assert item.absence.backup is None
    assert item.note.startswith("backup 'bernard' set aside: profile 'sales' locks 'reroute'")


def test_index_follows_changes_of_another_connection(store_path, policy):
    reader = SqliteStore(store_path)
    writer = UserStore(SqliteStore(store_path), clock=lambda: NOW)
    writer.set(policy, "bernard", {"notify.hours": "office"}, actor="b", origin="web")
    index = RefinementIndex(reader)
    index.load()
    assert len(index) == 1
    assert index.refresh() == frozenset()
    writer.set(policy, "alice", {"reroute.mobile": False}, actor="alice", origin="phone")
    assert index.refresh() == {"alice"}
    assert index.effective(policy, "alice").user.features.reroute.mobile is False
    writer.clear(policy, "alice", actor="it", origin="cli")
    assert index.refresh() == {"alice"}
    assert index.get("alice") is None and len(index) == 1
    assert index.effective(policy, "alice").user.features.reroute.mobile is True
    writer.backend.close()
    reader.close()


def test_index_sees_a_change_made_by_another_process(store_path, policy):
    import json
    import subprocess
    import sys
    import time

    from tests.support import REPO

    reader = SqliteStore(store_path)
    index = RefinementIndex(reader)
    index.load()
    assert index.effective(policy, "alice").user.backups == ("bernard", "@reception")
    subprocess.run([sys.executable, str(REPO / "tests" / "userstore" / "writer_main.py"),
                    str(EXAMPLE), str(store_path), "alice", json.dumps(["@reception"]), "1",
                    "0"], check=True, timeout=60)
    started = time.perf_counter()
    assert index.refresh() == {"alice"}
    effective = index.effective(policy, "alice")
    assert time.perf_counter() - started < 1.0
    assert effective.user.backups == ("@reception",)
    assert effective.values["backups"].source.endswith("from cli (by alice)")
    reader.close()
