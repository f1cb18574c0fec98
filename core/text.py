"""The one rule for showing outside text: caller IDs, mail headers, mail bodies, station ids.

Whoever places a call or sends a mail chooses these characters. Wherever they
are shown to a person (a mail header, an SMS, a log line, a spoken or printed
summary) the same characters must go, or one channel ends up trusting what
another refused: CR/LF and other C0 controls (header and log injection), DEL
and the C1 controls (NEL breaks lines in some viewers), the Unicode line and
paragraph separators, bidirectional overrides and isolates (U+202E shows "evil"
as "live"), zero-width and other format characters, lone surrogates (how
Python carries undecodable bytes) and unassigned or private-use code points.
Unicode's own categories say which these are (every ``C*`` category, and the
``Z*`` separators other than the plain space), so no hand-written list can
drift between callers.
"""

from __future__ import annotations

import re
import unicodedata

_SPACES = re.compile(r"[ ]+")


def _is_hidden(char: str) -> bool:
    category = unicodedata.category(char)
    return (category[0] == "C" or category[0] == "Z") and char != " "


def display_text(value: str | bytes | None, limit: int | None = None, *,
                 lines: bool = False) -> str:
    """`value` as text safe to show: hidden and control characters become one space.

    With ``lines=True`` line breaks (CR LF, CR, LF) are kept as ``\\n``, for
    bodies and absence messages; otherwise the result is one line. Bytes are
    read as UTF-8 with replacement; the result has at most `limit` characters,
    ending in "…" when cut.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    try:  # bytes smuggled in as surrogate escapes are read back as UTF-8
        value = value.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")
    except UnicodeEncodeError:  # a surrogate no decoder made ("\ud800"): unreadable
        value = "".join("\ufffd" if "\ud800" <= char <= "\udfff" else char for char in value)
    if lines:
        rows = value.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        text = "\n".join(_one_line(row) for row in rows).strip("\n")
    else:
        text = _one_line(value)
    return truncate(text, limit)


def _one_line(value: str) -> str:
    if value.isascii() and value.isprintable():  # the usual case: nothing hidden to look for
        return _SPACES.sub(" ", value).strip()
    shown = "".join(" " if _is_hidden(char) else char for char in value)
    return _SPACES.sub(" ", shown).strip()


def truncate(text: str, limit: int | None) -> str:
    """`text` cut to `limit` characters, the last one "…" when something was cut."""
    if limit is not None and len(text) > limit:
        return text[: max(limit - 1, 0)].rstrip() + "…"
    return text
