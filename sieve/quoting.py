"""Putting untrusted text into a Sieve script without changing its meaning.

User names, addresses and absence texts come from the policy and from
directories (LDAP, HR exports); a name such as ``Ann "x" \\ O'Neil`` must not end
a string early and run as Sieve. RFC 5228 section 2.4.2 defines quoted strings:
only ``"`` and ``\\`` need a backslash, and any other octet (CR and LF too) may
appear. Pigeonhole rejects NUL and invalid UTF-8, so both are refused here.

Scripts that ``require "variables"`` would also expand ``${...}`` inside user
text; the generator therefore never puts user text into such a script, and
:func:`sieve_literal` refuses ``${`` for the few admin-chosen strings (folder
names) that do go there.

This module cleans nothing: it only guarantees that Sieve carries a text
unchanged, and refuses a text it could not carry rather than silently dropping
characters. What a text may *show* (no control, bidi override, zero-width or C1
character...) is the project's one rule, :func:`mailcall.core.text.display_text`,
which the generator applies first to everything a vacation reply shows; what
is left (validated addresses, admin-chosen folder names) carries as it is.
"""

from __future__ import annotations

import re

_UNCARRIABLE = re.compile(r"[\x00-\x08\x0b-\x1f\ud800-\udfff]")
"""NUL (Pigeonhole refuses it), lone surrogates (not UTF-8) and the C0 controls other than
tab and line feed (a bare CR is not a line end in RFC 5228's grammar)."""


def sieve_quote(value: str) -> str:
    """`value` as a Sieve quoted string that reads back exactly as `value`.

    Raises ValueError for a character Sieve cannot carry: such text did not go
    through :func:`~mailcall.core.text.display_text` first, which is the caller's bug.
    """
    bad = _UNCARRIABLE.search(value)
    if bad is not None:
        raise ValueError(
            f"cannot put {value[:40]!r} into a Sieve script: character "
            f"U+{ord(bad.group()):04X} at {bad.start()} cannot be carried (show outside "
            "text through mailcall.core.text.display_text first)")
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def sieve_unquote(quoted: str) -> str:
    """Read a quoted string back per RFC 5228 2.4.2 (used by the tests to prove the round trip)."""
    if len(quoted) < 2 or quoted[0] != '"' or quoted[-1] != '"':
        raise ValueError(f"not a quoted string: {quoted[:40]!r}")
    out: list[str] = []
    body = quoted[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\":
            if i + 1 >= len(body):
                raise ValueError("dangling backslash")
            out.append(body[i + 1])
            i += 2
            continue
        if ch == '"':
            raise ValueError(f"unescaped quote at {i}")
        out.append(ch)
        i += 1
    return "".join(out)


def sieve_literal(value: str, what: str) -> str:
    """Quote an admin-chosen single-line value for a script that uses variables."""
    if "${" in value or any(ch < " " for ch in value):
        raise ValueError(
            f"{what} {value!r} contains '${{' or a control character, which Sieve would "
            "expand or reject; choose a plain name in the policy"
        )
    return sieve_quote(value)


def sieve_list(values: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(sieve_quote(v) for v in values) + "]"
