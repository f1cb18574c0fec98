"""A user's own absences: dates checked, backups checked against the profile, overlaps refused,
and the absences IT wrote in the policy file never removed and winning where both apply."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from mailcall.userstore.errors import RefinementRefused

PARIS = ZoneInfo("Europe/Paris")


def refused(store, policy, user, **kw) -> list[str]:
    with pytest.raises(RefinementRefused) as info:
        store.set_absence(policy, user, actor="it:test", origin="web", **kw)
    assert store.refinements(user).absences == (), "nothing saved"
    assert store.audit(user) == []
    return [str(p) for p in info.value.problems]


def test_until_before_from(store, policy):
    assert refused(store, policy, "alice", start="2026-12-20", until="2026-12-12") == [
        "absence.until: ends (2026-12-12 00:00) before it starts (2026-12-20 00:00); give "
        "--until after --from"]


def test_until_in_the_past(store, policy):
    assert refused(store, policy, "alice", until="2026-11-30T18:00") == [
        "absence.until: 2026-11-30 18:00 is in the past (now: 2026-12-01 10:00 CET); an "
        "absence must end later"]


def test_unparsable_dates_and_every_problem_at_once(store, policy):
    assert refused(store, policy, "alice", start="next monday", until="12/12/2026",
                   backup="ghost", message="bad\u202eone") == [
        "absence.from: 'next monday' is not a date or date-time like 2026-12-12 or "
        "2026-12-12T18:00",
        "absence.until: '12/12/2026' is not a date or date-time like 2026-12-12 or "
        "2026-12-12T18:00",
        "absence.backup: 'ghost' is not a defined user or @group (groups are written with "
        "'@', e.g. \"@reception\")",
        "absence.message: must not contain control or invisible characters: found U+202E at "
        "character 4"]


def test_backup_refused_by_the_profile(store, policy):
    assert refused(store, policy, "carole", until="2026-12-12", backup="bernard") == [
        "absence.backup: profile 'office' does not reroute the calls of an absent user "
        "(reroute.enabled and 'absent' in reroute.on): a backup would never be rung; leave "
        "--backup out"]
    assert refused(store, policy, "david", until="2026-12-12", backup="carole") == [
        "absence.backup: profile 'reception' locks 'reroute': the absence can be set, but who "
        "takes the calls is IT's choice (leave --backup out)"]
    assert refused(store, policy, "alice", until="2026-12-12", backup="alice") == [
        "absence.backup: an absent user cannot be their own backup"]


def test_absence_without_backup_is_allowed_even_when_reroute_is_locked(store, policy):
    refined = store.set_absence(policy, "david", until="2026-12-12", actor="it:t",
                                origin="cli")
    (absence,) = refined.absences
    assert absence.start == datetime(2026, 12, 1, 10, 0, tzinfo=PARIS)
    assert absence.until == datetime(2026, 12, 12, tzinfo=PARIS)
    assert absence.backup is None


def test_overlap_refused_then_clear_by_id(store, policy):
    first = store.set_absence(policy, "alice", start="2026-12-10", until="2026-12-20",
                              backup="bernard", message="Back on the 20th.", actor="alice",
                              origin="web").absences[0]
    with pytest.raises(RefinementRefused) as info:
        store.set_absence(policy, "alice", start="2026-12-19", until="2026-12-24",
                          actor="alice", origin="web")
    assert [str(p) for p in info.value.problems] == [
        f"absence: overlaps absence #{first.id} (2026-12-10 00:00 to 2026-12-20 00:00) "
        f"already set; clear it first (mailcall absence clear alice --id {first.id})"]
    with pytest.raises(RefinementRefused, match=r"#99 is not an absence of 'alice'"):
        store.clear_absences(policy, "alice", [99], actor="alice", origin="web")
    store.set_absence(policy, "alice", start="2026-12-20", until="2026-12-24", actor="alice",
                      origin="web")
    left = store.clear_absences(policy, "alice", [first.id], actor="alice", origin="web")
    assert [(a.start.day, a.until.day) for a in left.absences] == [(20, 24)]


def test_policy_absences_stand_and_win(store, policy):
    # emma is absent 1-13 December in the policy file, with bernard as backup
    store.set_absence(policy, "emma", start="2026-12-12", until="2026-12-15",
                      message="Moi", actor="emma", origin="web")
    store.clear(policy, "emma", actor="it:t", origin="cli")  # every refinement...
    assert store.refinements("emma").empty
    store.set_absence(policy, "emma", start="2026-12-12", until="2026-12-15",
                      message="Moi", actor="emma", origin="web")
    effective = store.effective(policy, "emma")
    assert [a.source for a in effective.absences] == [
        "policy file ([[absences]])",
        "user's choice at 2026-12-01 10:00 CET from web (by emma)"]
    on_12th = effective.absence_at(datetime(2026, 12, 12, 12, tzinfo=PARIS))
    assert on_12th is not None and on_12th.backup == "bernard", "IT's absence wins"
    on_14th = effective.absence_at(datetime(2026, 12, 14, 12, tzinfo=PARIS))
    assert on_14th is not None and on_14th.message == "Moi"
    store.clear_absences(policy, "emma", actor="it:t", origin="cli")
    assert [a.source for a in store.effective(policy, "emma").absences] == [
        "policy file ([[absences]])"], "the store never removes the policy's absences"


def test_message_keeps_line_breaks_and_is_bounded(store, policy):
    refined = store.set_absence(policy, "alice", until="2026-12-12",
                                message="Absent.\r\nUrgent: Bernard.", actor="a", origin="web")
    assert refined.absences[0].message == "Absent.\nUrgent: Bernard."
    assert refused(store, policy, "bernard", until="2026-12-12", message="x" * 1001) == [
        "absence.message: is 1001 characters long; at most 1000 (it is read aloud and sent as "
        "the auto-reply)"]


def test_absence_dates_outside_the_window_are_refused(store, policy):
    """Year 1 or 9999-12-31 are typing mistakes, and they overflow the Sieve auto-replies'
    UTC times: refused, with the window, and nothing saved."""
    window = ("is not between 2025-12-01 10:00 and 2031-12-01 10:00 CET; an absence must lie "
              "between one year ago and 5 years ahead")
    assert refused(store, policy, "alice", until="9999-12-31 23:30") == [
        f"absence.until: 9999-12-31 23:30 {window}"]
    assert refused(store, policy, "alice", start="0001-01-01", until="2026-12-12") == [
        f"absence.from: 0001-01-01 00:00 {window}"]
    # An aware time at the very edge of what Python holds is shown in its own offset.
    assert refused(store, policy, "alice", until="9999-12-31T23:30-05:00") == [
        f"absence.until: 9999-12-31 23:30 {window}"]
    # An end that early is first of all in the past, as any other past end.
    assert refused(store, policy, "alice", until="0001-01-01T00:00+14:00") == [
        "absence.until: 0001-01-01 00:00 is in the past (now: 2026-12-01 10:00 CET); an "
        "absence must end later"]
    assert refused(store, policy, "alice", start="2025-11-30", until="2031-12-02") == [
        f"absence.from: 2025-11-30 00:00 {window}",
        f"absence.until: 2031-12-02 00:00 {window}"]


def test_absence_at_the_edges_of_the_window_is_accepted(store, policy):
    kept = store.set_absence(policy, "alice", start="2025-12-01T10:00",
                             until="2031-12-01T10:00", actor="alice", origin="cli")
    assert [(a.start.year, a.until.year) for a in kept.absences] == [(2025, 2031)]
