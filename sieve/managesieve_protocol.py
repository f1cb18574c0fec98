"""ManageSieve (RFC 5804), the client side, without I/O: what Roundcube and Thunderbird speak.

Why mailcall speaks it: a vacation a user set in their mail client lives in
their own Sieve script, which only the user (or a master user) can read. The
employees' page already has the user's own password for a moment at login, so
it can read that script *as the user* (:mod:`.client_scripts`) with no new
privilege on the Dovecot side; the tests use the same client to do what
Roundcube does (PUTSCRIPT, SETACTIVE).

:class:`ManageSieveClient` is a sans-I/O machine (as :mod:`mailcall.core.sansio`
describes): fed the server's bytes, ``next_event()`` gives one :class:`Reply`
(the data lines of one command and its final OK/NO/BYE) or ``NEED_DATA``; every
transition is in :data:`TRANSITIONS`. The socket and TLS are
:mod:`.managesieve_session`'s.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass
from typing import Literal

from mailcall.core.sansio import (
    NEED_DATA,
    ByteReceiver,
    LocalProtocolError,
    NeedData,
    RemoteProtocolError,
    Transitions,
)

MAX_LINE = 64 * 1024
"""Longest line outside literals we accept from a server (capabilities are the longest)."""
MAX_LITERAL = 4 * 1024 * 1024
"""Largest literal: Dovecot refuses scripts over ``sieve_max_script_size`` (1 MiB default)."""
MAX_QUOTED = 1024
"""RFC 5804 §4: a quoted string holds at most 1024 octets; longer ones go as literals."""


class State(enum.Enum):
    GREETING = "greeting"
    READY = "ready"
    BUSY = "busy"
    CLOSED = "closed"
    ERROR = "error"


TRANSITIONS = Transitions(
    "ManageSieve client",
    initial=State.GREETING,
    error=State.ERROR,
    terminal={State.CLOSED, State.ERROR},
    ours={"send", "restart"},
    table={
        (State.GREETING, "ok"): State.READY,
        (State.GREETING, "bye"): State.CLOSED,
        (State.READY, "send"): State.BUSY,
        (State.READY, "restart"): State.GREETING,  # STARTTLS done: capabilities come again
        (State.BUSY, "ok"): State.READY,
        (State.BUSY, "no"): State.READY,
        (State.BUSY, "bye"): State.CLOSED,
        (State.READY, "bye"): State.CLOSED,  # a server may say BYE unasked (idle timeout)
        (State.GREETING, "eof"): State.CLOSED,
        (State.READY, "eof"): State.CLOSED,
        (State.BUSY, "eof"): State.CLOSED,
    },
)


@dataclass(frozen=True, slots=True)
class Atom:
    value: str


Item = Atom | str
"""A data item of a reply line: an atom (``ACTIVE``, ``OK``) or a string (quoted or literal)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """One command's whole answer, or the greeting."""

    kind: Literal["OK", "NO", "BYE"]
    code: tuple[Item, ...]
    """The response code in parentheses, e.g. ``(Atom("QUOTA"),)``; empty when none."""
    text: str
    lines: tuple[tuple[Item, ...], ...]
    """The data lines before the final response (capabilities, script names, a script)."""

    @property
    def ok(self) -> bool:
        return self.kind == "OK"

    def code_name(self) -> str:
        return self.code[0].value.upper() if self.code and isinstance(self.code[0], Atom) else ""


_ATOM = re.compile(rb"[^\s\"(){}]+")
_LITERAL = re.compile(rb"\{(\d{1,10})\+?\}\r\n")


class ManageSieveClient(ByteReceiver):
    """The client's half of one ManageSieve connection, without I/O."""

    __slots__ = ("_buf", "_eof", "_lines", "state")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._eof = False
        self._lines: list[tuple[Item, ...]] = []
        self.state = State.GREETING

    # -- what we send ----------------------------------------------------
    def send(self, command: str, *args: str | bytes) -> bytes:
        """The bytes of `command` with `args` (strings: quoted when they may be, else a
        literal; bytes: always a literal, as a script is sent)."""
        if not re.fullmatch(r"[A-Z]+", command):
            raise LocalProtocolError(f"ManageSieve: {command!r} is not a command name")
        self.state = TRANSITIONS.step(self.state, "send")
        out = bytearray(command.encode("ascii"))
        for arg in args:
            out += b" " + _argument(arg)
        return bytes(out + b"\r\n")

    def restart(self) -> None:
        """After STARTTLS's OK and the TLS handshake: the server greets again.

        Bytes already received after the OK came in clear, before TLS: parsed afterwards
        they would pass for the server's words over TLS (an attacker on the path injecting
        a greeting or a reply: the STARTTLS response injection), so they end the connection.
        """
        if self._buf or self._lines:
            self.state = State.ERROR
            raise RemoteProtocolError(
                f"ManageSieve: data after STARTTLS's OK, before TLS ({len(self._buf)} "
                "byte(s) sent in clear, possibly injected on the way): the connection is "
                "closed; if it happens again, check what stands between mailcall and the "
                "server")
        self.state = TRANSITIONS.step(self.state, "restart")

    # -- what we receive -------------------------------------------------
    def next_event(self) -> Reply | NeedData:
        while True:
            if self.state in (State.CLOSED, State.ERROR):
                raise RemoteProtocolError(f"ManageSieve: connection is {self.state.value}")
            parsed = self._line()
            if parsed is None:
                if self._eof:
                    self.state = TRANSITIONS.step(self.state, "eof")
                    raise RemoteProtocolError("ManageSieve: the server closed the connection"
                                              " in the middle of a reply")
                return NEED_DATA
            first = parsed[0] if parsed else None
            word = first.value.upper() if isinstance(first, Atom) else ""
            if word not in ("OK", "NO", "BYE"):
                self._lines.append(parsed)
                continue
            reply = self._reply(word, parsed[1:])
            self.state = TRANSITIONS.step(self.state, word.lower(),
                                          functools.partial(_unexpected, word, self.state))
            return reply

    def _reply(self, word: str, rest: tuple[Item, ...]) -> Reply:
        code: tuple[Item, ...] = ()
        if rest and rest[0] == Atom("("):
            try:
                end = rest.index(Atom(")"))
            except ValueError:
                self.state = State.ERROR
                raise RemoteProtocolError("ManageSieve: response code without ')'") from None
            code, rest = rest[1:end], rest[end + 1:]
        text = rest[0] if rest and isinstance(rest[0], str) else ""
        lines, self._lines = tuple(self._lines), []
        return Reply(word, code, text, lines)  # type: ignore[arg-type]

    def _line(self) -> tuple[Item, ...] | None:
        """One logical line (literals included) taken from the buffer, or None."""
        buf, pos, items = self._buf, 0, []
        while True:
            while pos < len(buf) and buf[pos] == 0x20:
                pos += 1
            if pos >= len(buf):
                return self._incomplete(pos)
            ch = buf[pos]
            if buf.startswith(b"\r\n", pos):
                del buf[:pos + 2]
                return tuple(items)
            if ch == 0x0D:
                if pos + 1 >= len(buf):
                    return self._incomplete(pos)
                raise self._broken("a CR not followed by LF")
            if ch in b"()":
                items.append(Atom(chr(ch)))
                pos += 1
            elif ch == 0x22:  # "
                end, value = _quoted(buf, pos)
                if end is None:
                    return self._incomplete(pos)
                items.append(value)
                pos = end
            elif ch == 0x7B:  # {
                m = _LITERAL.match(buf, pos)
                if m is None:
                    if b"\n" in buf[pos:pos + 16] or len(buf) - pos >= 16:
                        raise self._broken("a malformed literal")
                    return self._incomplete(pos)
                size = int(m.group(1))
                if size > MAX_LITERAL:
                    raise self._broken(f"a literal of {size} bytes (over {MAX_LITERAL})")
                if len(buf) < m.end() + size:
                    return None
                items.append(bytes(buf[m.end():m.end() + size]).decode("utf-8", "replace"))
                pos = m.end() + size
            else:
                m = _ATOM.match(buf, pos)
                if m is None:
                    raise self._broken(f"an unexpected byte {bytes([ch])!r}")
                items.append(Atom(m.group().decode("utf-8", "replace")))
                pos = m.end()

    def _incomplete(self, pos: int) -> None:
        """No whole line yet (no literal under way): refuse one that grows without bound."""
        if len(self._buf) - pos > MAX_LINE or pos > MAX_LINE:
            raise self._broken(f"a line over {MAX_LINE} bytes")
        return None

    def _broken(self, what: str) -> RemoteProtocolError:
        self.state = State.ERROR
        return RemoteProtocolError(f"ManageSieve: the server sent {what}")


def _unexpected(word: str, state: State) -> str:
    return f"ManageSieve: the server sent {word} in state {state.value}"


def _quoted(buf: bytearray, pos: int) -> tuple[int | None, str]:
    out = bytearray()
    i = pos + 1
    while i < len(buf):
        ch = buf[i]
        if ch == 0x5C:  # backslash
            if i + 1 >= len(buf):
                return None, ""
            out.append(buf[i + 1])
            i += 2
            continue
        if ch == 0x22:
            return i + 1, out.decode("utf-8", "replace")
        if ch in b"\r\n":
            raise RemoteProtocolError("ManageSieve: the server sent a quoted string with a "
                                      "line break")
        out.append(ch)
        i += 1
    return None, ""


def _argument(arg: str | bytes) -> bytes:
    if isinstance(arg, str):
        data = arg.encode("utf-8")
        if len(data) <= MAX_QUOTED and not any(c in data for c in b"\r\n\0"):
            return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    else:
        data = arg
    return b"{%d+}\r\n" % len(data) + data  # RFC 5804 §4: clients send non-synchronising
