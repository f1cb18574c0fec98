"""Call plans: the policy's answer to 'where does this call go, and why'."""

from __future__ import annotations

from datetime import datetime

import pytest

from mailcall.core.decisions.plans import CallRequest, Hangup, Ring, Voicemail
from mailcall.core.decisions.routing import plan_call
from mailcall.core.policy.load import compile_text

TUESDAY_10 = datetime(2026, 12, 1, 10, 5)   # office hours
TUESDAY_19 = datetime(2026, 12, 1, 19, 5)   # closed
EMMA_AWAY = datetime(2026, 12, 2, 10, 5)    # emma is absent
CHRISTMAS = datetime(2026, 12, 25, 10, 0)   # holiday


def rings(plan):
    return [(s.who, tuple(t.value for t in s.targets), s.after) for s in plan.steps
            if isinstance(s, Ring)]


def test_customer_facing_busy_goes_to_backup_then_busy_greeting(example):
    plan = plan_call(example, CallRequest("201", "+33698000000", TUESDAY_10, "busy"))
    assert plan.callee == "alice"
    assert rings(plan) == [("bernard", ("202",), ()), ("@reception", ("203", "204"), ())]
    assert plan.steps[-1] == Voicemail("alice", "busy", "alice's voicemail, busy greeting")
    assert "alice is busy" in plan.explanation


def test_unknown_state_rings_desk_then_mobile_then_backups(example):
    plan = plan_call(example, CallRequest("201", "", TUESDAY_10))
    assert rings(plan) == [
        ("alice", ("201",), ()),
        ("alice", ("+33612345678",), ("no-answer", "unavailable")),
        ("bernard", ("202",), ()),
        ("@reception", ("203", "204"), ()),
    ]
    assert plan.steps[0].own is True
    last = plan.steps[-1]
    assert isinstance(last, Voicemail) and last.greeting is None


def test_absent_user_gets_absence_backup_and_absence_greeting(example):
    plan = plan_call(example, CallRequest("205", "", EMMA_AWAY))
    assert rings(plan)[0] == ("bernard", ("202",), ())
    assert all(who != "emma" for who, _, _ in rings(plan))
    assert plan.steps[-1].greeting == "absence"
    assert any("emma is absent" in line for line in plan.explanation)


def test_absence_ends(example):
    plan = plan_call(example, CallRequest("205", "", datetime(2026, 12, 14, 10, 0)))
    assert rings(plan)[0] == ("emma", ("205",), ())


def test_office_worker_has_no_reroute(example):
    plan = plan_call(example, CallRequest("203", "", TUESDAY_10, "busy"))
    assert rings(plan) == []
    assert plan.steps == (Voicemail("carole", "unavailable",
                                    "carole's voicemail, unavailable greeting"),)
    assert "profile office does not reroute carole's calls" in plan.explanation


def test_off_hours_and_holidays_go_to_voicemail(example):
    for moment in (TUESDAY_19, CHRISTMAS):
        plan = plan_call(example, CallRequest("201", "", moment))
        assert rings(plan) == [], plan
        assert plan.steps[-1].greeting == "unavailable"


def test_group_rings_all_members_then_group_mailbox(example):
    plan = plan_call(example, CallRequest("200", "", TUESDAY_10))
    assert rings(plan) == [("@reception", ("203", "204"), ())]
    assert plan.steps[-1].mailbox == "carole"


def test_direct_number_in_national_form(example):
    assert plan_call(example, CallRequest("01 40 00 02 01", "", TUESDAY_10)).callee == "alice"
    assert plan_call(example, CallRequest("+33140000200", "", TUESDAY_10)).callee == "@reception"


def test_unknown_callee_hangs_up(example):
    plan = plan_call(example, CallRequest("999", "", TUESDAY_10))
    assert plan.callee is None
    assert isinstance(plan.steps[0], Hangup)


POLICY = """
[organisation]
name = "T"
domain = "t.example"
timezone = "Europe/Paris"
schedule = "day"
[schedules.day]
monday = ["08:00-18:00"]
tuesday = ["08:00-18:00"]
[profiles.desk.features]
reroute = { enabled = true, on = ["no-answer"] }
[users.a]
name = "A"
email = "a@t.example"
profile = "desk"
extensions = ["11"]
backups = ["b"]
[users.b]
name = "B"
email = "b@t.example"
profile = "desk"
extensions = ["12"]
backups = ["@g"]
schedule = "night"
[schedules.night]
monday = ["18:00-24:00"]
[users.c]
name = "C"
email = "c@t.example"
profile = "desk"
extensions = ["13"]
[groups.g]
members = ["c", "a"]
strategy = "in-order"
ring_time = 7
"""


def test_reroute_only_on_listed_outcomes_and_chains_past_unreachable_backups():
    policy = compile_text(POLICY)
    plan = plan_call(policy, CallRequest("11", "", TUESDAY_10))
    # Rerouting applies only after no answer; b is closed so b's own backup (@g) is used,
    # and a, already rung, is not rung again by the group.
    assert rings(plan) == [("a", ("11",), ()), ("c", ("13",), ("no-answer",))]
    assert plan.steps[1].seconds == 7
    assert any("b is outside opening hours: trying @g instead" in e for e in plan.explanation)
    assert any("a of group g is not rung again" in e for e in plan.explanation)
    busy = plan_call(policy, CallRequest("11", "", TUESDAY_10, "busy"))
    assert rings(busy) == []
    assert "no reroute: profile desk reroutes only on no-answer" in busy.explanation


def test_max_steps_bounds_the_plan():
    policy = compile_text(POLICY + '\n[telephony]\nmax_steps = 1\n')
    plan = plan_call(policy, CallRequest("11", "", TUESDAY_10))
    assert len(plan.steps) == 1
    assert any("telephony.max_steps" in e for e in plan.explanation)


@pytest.mark.parametrize("state", ["unknown", "busy", "unavailable", "available"])
def test_plans_are_pure(example, state):
    request = CallRequest("201", "+33698000000", TUESDAY_10, state)
    assert plan_call(example, request) == plan_call(example, request)


def test_decisions_take_their_clock_from_the_caller():
    """Pure means reproducible: no decision module reads the wall clock itself."""
    import ast
    from pathlib import Path

    import mailcall.core.decisions as decisions

    readers = []
    for path in sorted(Path(decisions.__file__).parent.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in {"now", "today", "utcnow",
                                                                 "time", "monotonic"}:
                readers.append(f"{path.name}:{node.lineno} .{node.attr}")
    assert readers == []
    with pytest.raises(TypeError):
        CallRequest("201")  # type: ignore[call-arg]  # the time is not optional
