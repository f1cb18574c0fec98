"""The policy file is the ceiling: refusals name the profile (or the policy key) and the field,
and a refused change saves nothing, not even its allowed parts."""

from __future__ import annotations

import pytest

from mailcall.userstore.errors import RefinementRefused


def refused(store, policy, user, values) -> list[str]:
    with pytest.raises(RefinementRefused) as info:
        store.set(policy, user, values, actor="it:test", origin="cli")
    assert store.refinements(user).empty, "a refused change must save nothing"
    assert store.audit(user) == [], "a refused change must not be audited"
    return [str(p) for p in info.value.problems]


def test_feature_the_profile_does_not_grant(store, policy):
    assert refused(store, policy, "carole", {"notify.mail": True}) == [
        "notify.mail: profile 'office' does not grant notify.mail (it is off there); users "
        "may only switch a feature off"]


def test_medium_outside_the_profile(store, policy):
    assert refused(store, policy, "alice", {"notify.media": ["sms", "webhook"]}) == [
        "notify.media: webhook not granted by profile 'sales' (notify.media = sms, email); "
        "users may only choose among those"]


def test_hours_wider_than_the_profile(store, policy):
    assert refused(store, policy, "alice", {"notify.hours": "always"}) == [
        "notify.hours: profile 'sales' grants notify.hours = 'office' only; users may choose "
        "'office' (only a profile granting 'always' leaves office or outside-office to them)"]


def test_ceiling_narrowed_by_the_policy_file_names_the_override(store, policy):
    # bernard's profile rings the mobile, but IT switched it off for him in the policy file
    assert refused(store, policy, "bernard", {"reroute.mobile": True}) == [
        "reroute.mobile: the policy file for user 'bernard' "
        "(users.bernard.overrides.reroute.mobile) does not grant reroute.mobile (it is off "
        "there); users may only switch a feature off"]


def test_locked_feature(store, policy):
    # reception locks reroute: the order of backups is a collective choice there
    assert refused(store, policy, "david", {"backups": []}) == [
        "backups: profile 'reception' locks 'reroute': users may not change it; ask IT to "
        "change the profile or the policy file"]


def test_backup_that_does_not_exist(store, policy):
    assert refused(store, policy, "alice", {"backups": ["ghost"]}) == [
        "backups: 'ghost' is not a defined user or @group (groups are written with '@', "
        "e.g. \"@reception\")"]


def test_backup_not_among_the_allowed(store, policy):
    assert refused(store, policy, "alice", {"backups": ["@reception", "carole"]}) == [
        "backups: 'carole' is not among the backups the policy file gives user 'alice' "
        "(bernard, @reception); users may only reorder or drop those: ask IT to add 'carole' "
        "to users.alice.backups"]


def test_greeting_not_granted(store, policy):
    assert refused(store, policy, "carole", {"greetings": ["unavailable", "busy"]}) == [
        "greetings: busy not granted by profile 'office' (greetings = unavailable); users may "
        "only choose among those"]


def test_narrowing_media_must_keep_the_preferred_medium(store, policy):
    assert refused(store, policy, "alice", {"notify.media": ["email"]}) == [
        "notify.media: leaves out 'sms', the preferred medium in the policy file "
        "(users.alice.preferred_medium); set preferred_medium to one of email in the same "
        "change"]
    store.set(policy, "alice", {"notify.media": ["email"], "preferred_medium": "email"},
              actor="it:test", origin="cli")
    assert store.refinements("alice").values["preferred_medium"].value == "email"


def test_one_bad_value_refuses_the_whole_change(store, policy):
    assert refused(store, policy, "alice", {"notify.hours": "office", "backups": ["ghost"],
                                            "notify.voicemail": "maybe"}) == [
        "backups: 'ghost' is not a defined user or @group (groups are written with '@', "
        "e.g. \"@reception\")",
        "notify.voicemail: must be on or off (true/false), not 'maybe'"]


def test_unknown_user_and_unknown_field(store, policy):
    assert refused(store, policy, "zoe", {"notify.hours": "office"}) == [
        "user: 'zoe' is not a user of the policy file ("
        f"{policy.sources[0]}); 'mailcall users' lists them"]
    assert refused(store, policy, "alice", {"ring_time": 5}) == [
        "ring_time: is not a setting users may change; they are: preferred_medium, "
        "notify.mail, notify.voicemail, notify.media, notify.hours, reroute.mobile, backups, "
        "greetings, pin"]


def test_pin_needs_mailbox_by_phone_and_a_hash(store, policy, tmp_path):
    from mailcall.core.policy.load import compile_text
    from tests.userstore.conftest import EXAMPLE

    text = EXAMPLE.read_text().replace("mailbox_by_phone = true", "mailbox_by_phone = false")
    no_phone = compile_text(text)
    assert refused(store, no_phone, "carole", {"pin": "1234"}) == [
        "pin: profile 'office' does not grant mailbox_by_phone: a phone PIN would open nothing"]
    assert refused(store, policy, "carole", {"pin": "1234"}) == [
        "pin: must be a PIN hash made by mailcall (hash_pin), never the PIN itself"]


def test_allowed_narrowings_are_saved(store, policy):
    refined = store.set(policy, "alice", {
        "notify.hours": "office", "notify.mail": False, "reroute.mobile": False,
        "backups": ["@reception", "bernard"], "greetings": ["absence"]},
        actor="it:test", origin="cli")
    assert {k: v.value for k, v in refined.values.items()} == {
        "notify.hours": "office", "notify.mail": False, "reroute.mobile": False,
        "backups": ["@reception", "bernard"], "greetings": ["absence"]}
