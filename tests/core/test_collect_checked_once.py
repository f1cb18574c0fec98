"""What was checked where it was collected is not filtered again, in silence, where used.

Review finding (issue #11): ``generate_greetings`` filtered the engines ``engines_from``
had already checked (a plugin offering anything else is named there) a second time with
``isinstance``, dropping what failed without a word: handed a non-engine, it wrote no
greeting and said nothing. Now the engines it is given are the engines it uses.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailcall.core.policy.load import load_policy
from mailcall.plugins.greetings import generate_greetings

from .conftest import EXAMPLE


class NotAnEngine:
    """No ``synthesize``: what a caller bypassing ``engines_from`` might hand over."""

    name = "half-done"


def test_a_non_engine_given_to_generate_greetings_is_an_error_not_silence(tmp_path):
    policy = load_policy(EXAMPLE)
    with pytest.raises(AttributeError, match="synthesize"):
        generate_greetings(policy, [NotAnEngine()], tmp_path,
                           datetime(2026, 11, 28, tzinfo=UTC))
