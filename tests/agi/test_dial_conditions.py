"""One reading of DIALSTATUS for the plan and the voicemail mail (agi/replies.py)."""

from __future__ import annotations

from mailcall.agi.handlers.voicemail import reason_for
from mailcall.agi.replies import DIAL_CONDITIONS, DIAL_STATUSES
from mailcall.core.policy.model import REROUTE_CONDITIONS


def test_the_voicemail_reason_is_the_condition_the_plan_reads():
    for status in DIAL_STATUSES:
        assert reason_for(status) == DIAL_CONDITIONS.get(status, "direct"), status
    assert reason_for(None) == reason_for("") == "direct"


def test_a_refused_dial_string_is_told_as_unreachable_not_as_a_direct_call():
    """The plan moved on from INVALIDARGS as "unavailable", but the voicemail mail said the
    caller had asked for voicemail directly: both read it the same way now."""
    assert reason_for("INVALIDARGS") == "unavailable"


def test_conditions_are_words_of_the_policy():
    assert set(DIAL_CONDITIONS.values()) <= set(REROUTE_CONDITIONS)
    assert set(DIAL_CONDITIONS) <= DIAL_STATUSES
