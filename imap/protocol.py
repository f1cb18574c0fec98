"""IMAP responses, sans-I/O: complete responses cut from a byte stream, and their tokens.

Why not imaplib's own reader: it answers one command at a time. Pipelining
(RFC 3501 §5.5: several commands sent at once, answered in order) turns a
mailbox count into one round trip after the login, and needs a reader that
takes whatever arrives and says when a response is complete.

Bounded: a line over ``max_line`` or a response over ``max_response`` bytes
(literals included) is a :class:`~mailcall.core.sansio.RemoteProtocolError`, never an
unbounded buffer: bytes that are not IMAP as RFC 3501 writes it are the peer's fault.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailcall.core.sansio import RemoteProtocolError

_LITERAL = re.compile(rb"\{(\d{1,9})\+?\}\r\n\Z")


@dataclass(frozen=True, slots=True)
class Tagged:
    tag: bytes
    status: bytes
    """b"OK", b"NO" or b"BAD" (upper case)."""
    text: bytes


@dataclass(frozen=True, slots=True)
class Untagged:
    raw: bytes
    """The whole response, literals included, without the leading "* "."""

    def tokens(self) -> list:
        return parse(self.raw)


@dataclass(frozen=True, slots=True)
class Continuation:
    text: bytes


Response = Tagged | Untagged | Continuation


class ResponseReader:
    """Feed it bytes as they arrive; :meth:`pop` returns complete responses, in order."""

    def __init__(self, *, max_line: int = 64 * 1024, max_response: int = 1 << 20) -> None:
        self.max_line = max_line
        self.max_response = max_response
        self._buf = bytearray()
        self._pos = 0
        """Where the response being assembled has been scanned to (past whole literals)."""

    def feed(self, data: bytes) -> None:
        self._buf += data

    def pop(self) -> Response | None:
        buf = self._buf
        while True:
            end = buf.find(b"\r\n", self._pos)
            if end < 0:
                if len(buf) - self._pos > self.max_line:
                    raise RemoteProtocolError(f"a response line longer than {self.max_line} bytes")
                return None
            if end - self._pos > self.max_line:
                raise RemoteProtocolError(f"a response line longer than {self.max_line} bytes")
            m = _LITERAL.search(buf, max(self._pos, end - 12), end + 2)
            if m is None:
                raw = bytes(buf[:end])
                del buf[:end + 2]
                self._pos = 0
                return _classify(raw)
            size = int(m.group(1))
            if end + 2 + size > self.max_response:
                raise RemoteProtocolError(f"a response larger than {self.max_response} bytes")
            if len(buf) < end + 2 + size:
                return None  # the literal is not all here yet; _pos stays before it
            self._pos = end + 2 + size

    @property
    def buffered(self) -> int:
        return len(self._buf)


def _classify(raw: bytes) -> Response:
    if raw.startswith(b"* "):
        return Untagged(raw[2:])
    if raw.startswith(b"+"):
        return Continuation(raw[1:].strip())
    tag, _, rest = raw.partition(b" ")
    status, _, text = rest.partition(b" ")
    status = status.upper()
    if not tag or status not in (b"OK", b"NO", b"BAD"):
        raise RemoteProtocolError(f"not an IMAP response: {raw[:80]!r}")
    return Tagged(tag, status, text)


_SPECIAL = b' ()"{\r\n'


def parse(raw: bytes) -> list:
    """Tokens of one response: atoms and strings as bytes, NIL as None, lists as lists.

    An atom that opens a ``[`` runs to its ``]`` (``BODY[HEADER.FIELDS (A B)]`` is one
    token), as in FETCH responses.
    """
    stack: list[list] = [[]]
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x20:
            i += 1
        elif c == 0x28:  # (
            stack.append([])
            i += 1
        elif c == 0x29:  # )
            if len(stack) == 1:
                raise RemoteProtocolError("unbalanced ')' in a response")
            done = stack.pop()
            stack[-1].append(done)
            i += 1
        elif c == 0x22:  # "quoted"
            out = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise RemoteProtocolError("unterminated quoted string in a response")
                ch = raw[i]
                if ch == 0x5C and i + 1 < n:  # backslash
                    out.append(raw[i + 1])
                    i += 2
                elif ch == 0x22:
                    i += 1
                    break
                else:
                    out.append(ch)
                    i += 1
            stack[-1].append(bytes(out))
        elif c == 0x7B:  # {size}\r\n then size bytes
            close = raw.find(b"}", i)
            if close < 0 or raw[close + 1:close + 3] != b"\r\n":
                raise RemoteProtocolError("malformed literal in a response")
            size = int(raw[i + 1:close].rstrip(b"+"))
            start = close + 3
            if start + size > n:
                raise RemoteProtocolError("literal shorter than announced")
            stack[-1].append(raw[start:start + size])
            i = start + size
        else:
            j = i
            while j < n and raw[j] not in _SPECIAL:
                if raw[j] == 0x5B:  # [ ... ]
                    close = raw.find(b"]", j)
                    if close < 0:
                        raise RemoteProtocolError("unterminated '[' in a response")
                    j = close
                j += 1
            if j == i:  # a bare CR, LF: never valid here, and must not stall the loop
                raise RemoteProtocolError(f"unexpected byte {raw[i:i + 1]!r} in a response")
            atom = raw[i:j]
            stack[-1].append(None if atom.upper() == b"NIL" else atom)
            i = j
    if len(stack) != 1:
        raise RemoteProtocolError("unbalanced '(' in a response")
    return stack[0]


def fetch_items(tokens: list) -> tuple[int, dict[bytes, object]] | None:
    """(message number, {ITEM NAME upper-cased: value}) of a ``N FETCH (...)`` response;
    None when the response is something else."""
    if len(tokens) != 3 or not isinstance(tokens[2], list) or tokens[1] is None:
        return None
    if tokens[1].upper() != b"FETCH" or not tokens[0] or not tokens[0].isdigit():
        return None
    items = tokens[2]
    if len(items) % 2:
        raise RemoteProtocolError("odd number of FETCH items")
    out: dict[bytes, object] = {}
    for k in range(0, len(items), 2):
        name = items[k]
        if not isinstance(name, bytes):
            raise RemoteProtocolError("FETCH item name is not an atom")
        out[name.upper()] = items[k + 1]
    return int(tokens[0]), out
