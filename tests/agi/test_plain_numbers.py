"""One rule for a dialable number: the AGI side and the dial strings use the policy's."""

from __future__ import annotations

import pytest

from mailcall.agi.safety import is_dial_number
from mailcall.core.decisions.plans import Endpoint
from mailcall.core.policy.telephony import UnsafeEndpoint, dial_string

from .harness import make_runtime

GOOD = ["201", "+33612345678", "1" * 20]
BAD = ["1" * 21, "1" * 32, "201\n", "+33612345678\n", "20a", "", "+", "2 01", "*201"]


@pytest.mark.parametrize("value", GOOD + BAD)
def test_what_the_agi_side_dials_is_what_a_dial_string_accepts(tmp_path, value):
    policy = make_runtime(tmp_path).policy
    try:
        dial_string(policy, Endpoint("extension", value))
        accepted = True
    except UnsafeEndpoint:
        accepted = False
    assert is_dial_number(value) is accepted is (value in GOOD)
