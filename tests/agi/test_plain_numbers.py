"""One rule for a dialable number: the AGI side and the dial strings use the policy's."""

from __future__ import annotations

import pytest

from mailcall.agi.safety import dialled
from mailcall.core.decisions.plans import Endpoint
from mailcall.core.policy.telephony import UnsafeEndpoint, dial_string, is_plain_number

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
    assert is_plain_number(value) is accepted is (value in GOOD)


@pytest.mark.parametrize("value", GOOD + BAD + ["*98", "#", "12#", "+*1"])
def test_what_is_read_as_dialled_is_what_may_be_dialled(value):
    """Issue 11: one rule for dial input. The old `dialled` had its own (1 to 32 of digits,
    * and #), so a 25-digit caller ID or "*201" became a callee no dial string accepts.
    `dialled` only removes spaces (and the line end of a bad AGI argument) first."""
    plain = value.strip().replace(" ", "")
    assert (dialled(value) is not None) is is_plain_number(plain)
    assert dialled(value) in (None, plain)


def test_dialled_drops_spaces_only():
    assert dialled(" 2 01 ") == "201"
    assert dialled("+33 6 12 34 56 78") == "+33612345678"
    assert dialled(None) is None
    assert dialled("1" * 25) is None and dialled("*201") is None and dialled("#") is None
