"""Turning plan endpoints into Asterisk dial strings.

Shared by `mailcall route --explain` and the FastAGI route handler so that
what the administrator reads is exactly what Asterisk is asked to dial.
"""

from __future__ import annotations

import re

from mailcall.core.decisions.plans import Endpoint
from mailcall.core.policy.model import Policy

_SAFE = re.compile(r"\+?[0-9]{1,20}")
"""A plain number: digits with an optional leading +, as the policy's numbers are."""


def is_plain_number(value: str) -> bool:
    """The one rule for what may be formatted into a dial string."""
    return _SAFE.fullmatch(value) is not None


class UnsafeEndpoint(ValueError):
    """An endpoint value that is not plain digits: it must never reach Dial()."""


def dial_string(policy: Policy, endpoint: Endpoint) -> str:
    if not is_plain_number(endpoint.value):
        raise UnsafeEndpoint(f"refusing to dial {endpoint.value!r}: not a plain number")
    if endpoint.kind == "extension":
        return policy.telephony.endpoint.format(extension=endpoint.value)
    return policy.telephony.external.format(number=endpoint.value)


def dial_targets(policy: Policy, endpoints: tuple[Endpoint, ...]) -> str:
    """The `&`-joined first argument of Dial()."""
    return "&".join(dial_string(policy, e) for e in endpoints)
