"""The wire form of an AMI action, checked against what Asterisk's reader accepts.

What Asterisk accepts (main/manager.c ``get_input``): lines of at most 1024
bytes including CR LF, longer ones are dropped with a warning, and at most 128
header lines per action. :func:`encode_action` refuses anything else and any
CR, LF or NUL inside a value, so data never injects a header. The parser
(:mod:`mailcall.ami.protocol`) reads field names by the same rule.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from mailcall.core.sansio import LocalProtocolError

ASTERISK_LINE = 1024
"""manager.c reads actions into ``char inbuf[1025]``: a longer line is dropped."""
ASTERISK_MAX_HEADERS = 128
"""AST_MAX_MANHEADERS: header lines Asterisk keeps per action."""

NAME_OK = re.compile(r"[A-Za-z0-9_-]{1,64}").fullmatch
"""A field name (and the ActionID prefix): what both directions accept."""
_BAD_VALUE = re.compile(r"[\r\n\0]").search


def encode_action(action: str, fields: Mapping[str, object] | Iterable[tuple[str, object]],
                  action_id: str) -> bytes:
    """The wire form of one action, checked line by line against Asterisk's reader."""
    pairs = list(fields.items()) if isinstance(fields, Mapping) else list(fields)
    if len(pairs) + 2 > ASTERISK_MAX_HEADERS:
        raise LocalProtocolError(f"{action}: more than {ASTERISK_MAX_HEADERS} header lines")
    if any(str(k).lower() in ("action", "actionid") for k, _ in pairs):
        raise LocalProtocolError(f"{action}: Action and ActionID are set by the protocol")
    out = bytearray()
    for key, value in (("Action", action), ("ActionID", action_id), *pairs):
        if not isinstance(key, str) or not NAME_OK(key):
            raise LocalProtocolError(f"{action}: field name {key!r}: letters, digits, - and _")
        text = str(value)
        if _BAD_VALUE(text):
            raise LocalProtocolError(f"{action}: field {key} holds CR, LF or NUL")
        line = f"{key}: {text}\r\n".encode()
        if len(line) > ASTERISK_LINE:
            raise LocalProtocolError(f"{action}: field {key} longer than Asterisk reads "
                                     f"({ASTERISK_LINE} bytes per line)")
        out += line
    out += b"\r\n"
    return bytes(out)
