"""Turning caller-controlled text into values that are safe on the wire and on disk.

Caller ID, DNID, AGI arguments and the query string are typed or forged by
whoever places the call. They never become part of a path, and only reach
Asterisk through the quoting serializer (commands.py). These helpers are the
single place that decides what is acceptable.
"""

from __future__ import annotations

import re
from pathlib import Path

_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_NUMBER = re.compile(r"\+?[0-9]{1,32}")
_DIALLED = re.compile(r"\+?[0-9*#]{1,32}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 and C1 controls (NEL, U+0085, included), Unicode line and paragraph
separators (which some mail clients and log viewers break lines on) and
bidirectional overrides (which make "evil" display as "live")."""


def safe_component(value: str, default: str = "call", limit: int = 64) -> str:
    """One path component made of [A-Za-z0-9._-], never "." or "..", never empty."""
    cleaned = _SAFE_CHARS.sub("_", value)[:limit].lstrip(".")
    return cleaned or default


def is_dial_number(value: str) -> bool:
    """Digits with an optional leading +: what may be formatted into a dial string."""
    return bool(_NUMBER.fullmatch(value))


def dialled(value: str | None) -> str | None:
    """An extension or number as dialled (digits, +, *, #), or None."""
    if value is None:
        return None
    value = value.strip().replace(" ", "")
    return value if _DIALLED.fullmatch(value) else None


def caller_text(value: str, limit: int = 80) -> str:
    """Caller ID text for records and logs: no control, line-breaking or bidi characters,
    bounded length."""
    return _CONTROL.sub("", value)[:limit]


def inside(base: Path, candidate: Path) -> bool:
    """True when `candidate` resolves to a path under `base` (symlinks followed)."""
    try:
        return candidate.resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError, ValueError):
        return False
