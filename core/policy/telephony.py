"""Turning plan endpoints into Asterisk dial strings.

Shared by `mailcall route --explain`, the FastAGI route handler and the phone
menu's call back, so that what the administrator reads is exactly what Asterisk
is asked to dial.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailcall.core.decisions.plans import Endpoint
from mailcall.core.policy.model import Policy
from mailcall.core.text import display_text

_SAFE = re.compile(r"\+?[0-9]{1,20}")
"""A plain number: digits with an optional leading +, as the policy's numbers are."""


def is_plain_number(value: str) -> bool:
    """The one rule for what may be formatted into a dial string."""
    return _SAFE.fullmatch(value) is not None


class UnsafeEndpoint(ValueError):
    """An endpoint value that is not plain digits: it must never reach Dial()."""


def dial_string(policy: Policy, endpoint: Endpoint) -> str:
    if not is_plain_number(endpoint.value):
        raise UnsafeEndpoint(f"refusing to dial {display_text(repr(endpoint.value), 80)}: "
                             "not a plain number (digits with an optional leading +)")
    if endpoint.kind == "extension":
        return policy.telephony.endpoint.format(extension=endpoint.value)
    return policy.telephony.external.format(number=endpoint.value)


@dataclass(frozen=True)
class DialArgument:
    """What Dial() is given for some endpoints, and the endpoints refused on the way."""

    text: str | None
    """``PJSIP/201&PJSIP/202,20`` (then ``,options`` when there are some); None when
    no endpoint could be dialled (then Dial is not run at all)."""
    refused: tuple[str, ...] = ()
    """One line per endpoint left out, saying which and why, for a log or ``--explain``."""


def dial_argument(policy: Policy, targets: Iterable[Endpoint], seconds: int,
                  options: str = "") -> DialArgument:
    """The one rule for Dial()'s argument: the route handler dials it, ``mailcall route
    --explain`` prints it, the phone menu's call back dials it.

    Each endpoint goes through :func:`dial_string`; one that is not a plain number is
    left out (and named in ``refused``) rather than stopping the rest: a plugin's bad
    endpoint must not keep the others from ringing, nor make ``--explain`` fail.
    """
    strings = []
    refused = []
    for endpoint in targets:
        try:
            strings.append(dial_string(policy, endpoint))
        except UnsafeEndpoint as exc:
            refused.append(str(exc))
    if not strings:
        return DialArgument(None, tuple(refused))
    text = f"{'&'.join(strings)},{int(seconds)}" + (f",{options}" if options else "")
    return DialArgument(text, tuple(refused))
