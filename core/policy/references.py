"""How one part of the policy names another, and what a problem says when the name is wrong.

Shared by every section that refers to a profile, a schedule, a user or a group,
so that the words of "is not defined" and the list of what is are the same
wherever IT made the mistake.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from mailcall.core.policy.value_checks import Checker, Path


def reference(check: Checker, t: dict[str, Any], key: str, path: Path, what: str) -> str | None:
    """The name `t[key]` refers to, or None (absent, or not a string: problem recorded).

    Only a string can name something; a list or table there must be reported, not
    looked up (it cannot even be a dictionary key).
    """
    if key not in t:
        return None
    return check.typed(t[key], (*path, key), str, what)


def known(names: Iterable[str]) -> str:
    """What a problem adds after an undefined name: the names that are defined."""
    names = sorted(names)
    return f" (defined: {', '.join(names)})" if names else " (none is defined)"
