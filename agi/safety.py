"""Turning caller-controlled text into values that are safe on the wire and on disk.

Caller ID, DNID, AGI arguments and the query string are typed or forged by
whoever places the call. They never become part of a path, and only reach
Asterisk through the quoting serializer (commands.py). These helpers are the
single place that decides what is acceptable.
"""

from __future__ import annotations

import re
from pathlib import Path

from mailcall.core.policy.telephony import is_plain_number
from mailcall.core.text import display_text

_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_QUOTED_PAIR = re.compile(r"\\([\x00-\x09\x0b\x0c\x0e-\x7f])")
"""RFC 3261 25.1: ``quoted-pair = "\\" (%x00-09 / %x0B-0C / %x0E-7F)``."""


def safe_component(value: str, default: str = "call", limit: int = 64) -> str:
    """One path component made of [A-Za-z0-9._-], never "." or "..", never empty."""
    cleaned = _SAFE_CHARS.sub("_", value)[:limit].lstrip(".")
    return cleaned or default


def dialled(value: str | None) -> str | None:
    """An extension or number as dialled, spaces removed, by the one rule of what may be
    dialled (:func:`~mailcall.core.policy.telephony.is_plain_number`); else None."""
    if value is None:
        return None
    value = value.strip().replace(" ", "")
    return value if is_plain_number(value) else None


def caller_text(value: str, limit: int = 80) -> str:
    """Caller ID text for records and logs, by the one rule (:func:`display_text`).

    No control, line-breaking, bidi or other hidden character survives (each
    becomes a space), the result is one line of at most `limit` characters
    (ending in "…" when cut), and no input raises: a lone surrogate, which
    display_text's UTF-8 round trip cannot encode, is shown as U+FFFD first.
    """
    if not value.isascii():
        value = _SURROGATE.sub("\ufffd", value)
    return display_text(value, max(limit, 1))


def unescape_display_name(value: str) -> str:
    """A SIP display name as the caller wrote it: RFC 3261 quoted-pairs undone.

    PJSIP keeps a quoted display name's escapes (``"Jean \\"Le Boss\\""``
    reaches ``agi_calleridname`` as ``Jean \\"Le Boss\\"``; res_pjsip copies
    pjsip's ``display`` untouched). A backslash can only come from a
    quoted-string there (a token display name cannot hold one), so each
    ``\\`` followed by an ASCII character other than CR and LF is undone,
    nothing else: ``\\\\`` gives ``\\``, and a backslash before anything else
    stays as it is.
    """
    return _QUOTED_PAIR.sub(r"\1", value) if "\\" in value else value


def caller_name(value: str, limit: int = 80) -> str:
    """``agi_calleridname`` for a message's Subject and From: unescaped, then cleaned."""
    return caller_text(unescape_display_name(value), limit)


def inside(base: Path, candidate: Path) -> bool:
    """True when `candidate` resolves to a path under `base` (symlinks followed)."""
    try:
        return candidate.resolve().is_relative_to(base.resolve())
    except (OSError, RuntimeError, ValueError):
        return False
