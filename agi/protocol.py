"""FastAGI without I/O: a connection state machine fed bytes, emitting events.

Modelled on h11: the caller pushes whatever arrived with
:meth:`Connection.receive_data` (``b""`` for end of file), pulls
:meth:`Connection.next_event` until it returns :data:`NEED_DATA`, and asks
:meth:`Connection.send` for the bytes of a command. No socket, no clock: the
server owns those, tests drive this one byte at a time.

What the wire looks like (res_agi.c and the traces in ``shared/asterisk``):

* Asterisk opens with ``agi_name: value`` lines ended by a blank line, in the
  fixed order of res_agi.c ``setup_env`` (agi/environment_reader.py reads it,
  a caller's line breaks inside a value included);
* then the server writes one command line and Asterisk answers it; any data
  sent while STREAM FILE, SAY or GET DATA plays interrupts it silently, so this
  machine refuses a second command until the first one's reply is complete;
* a bare ``HANGUP`` line can arrive at any time after the environment (before
  a reply, between commands, after the server closed): it is an event, not a
  reply, and it marks the channel as hung up.

Every input is bounded: line length, environment line count, usage-text lines.
Anything else is a :class:`RemoteProtocolError` and the connection is over.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass

from mailcall.core.sansio import (
    NEED_DATA,
    ByteReceiver,
    LocalProtocolError,  # noqa: F401  (re-exported: what send() raises)
    NeedData,
    RemoteProtocolError,
    Transitions,
)
from mailcall.core.text import display_text

from .commands import DEFAULT_LINE_LIMIT, Command, encode
from .environment import Environment, build_environment
from .environment_layout import MAX_ENV_LINES
from .environment_reader import EnvironmentBlockReader
from .replies import Reply, parse_reply_line

log = logging.getLogger("mailcall.agi.protocol")

MAX_LINE = 16384
"""Longest line accepted from Asterisk (its own buffers are 8 KiB at most)."""
MAX_USAGE_LINES = 200
MAX_USAGE_BYTES = 65536
"""A whole multi-line 520 (Asterisk's longest usage texts are a few KiB)."""


_HANGUP_LINES = (b"HANGUP\n", b"HANGUP\r\n")


class State(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: the table lookups skip Enum's hash
    ENVIRONMENT = "environment"
    IDLE = "idle"
    AWAITING_REPLY = "awaiting-reply"
    USAGE = "usage"
    """Reading the lines of a multi-line 520 answer."""
    CLOSED = "closed"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class EnvironmentReceived:
    environment: Environment


@dataclass(frozen=True, slots=True)
class Trying:
    """``100 result=0 Trying...``: the real reply is still to come."""

    text: str


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """The bare ``HANGUP`` line: the caller's channel is gone."""


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """End of file after a clean point (a pending command, if any, got no reply)."""

    pending: bool


Event = EnvironmentReceived | Reply | Trying | HangupNotice | ConnectionClosed


# The inputs of the FastAGI machine: what Asterisk sent, or (SEND) what the server asks.
ENVIRONMENT_BLOCK = "environment"
"""The whole ``agi_*`` block, up to its closing blank line."""
TRYING = "trying"
"""``100 result=0 Trying...``"""
USAGE_LINE = "usage"
"""A line of a multi-line ``520-`` answer before its last one."""
REPLY = "reply"
"""A final reply line (the last ``520`` line of a usage answer included)."""
HANGUP = "hangup"
"""The bare ``HANGUP`` line."""
EOF_INPUT = "eof"
SEND = "send"
"""The server sends a command (our side)."""
STRAY_ENV = "environment-line"
"""An ``agi_`` line after the block: never allowed (see agi/environment_reader.py)."""
CONTINUATION = "continuation"
"""A ``NNN-`` line other than ``520-``: never allowed."""
GARBAGE = "garbage"
"""A line that is no AGI reply: never allowed."""

TRANSITIONS: Transitions[State] = Transitions(
    "FastAGI",
    initial=State.ENVIRONMENT,
    error=State.ERROR,
    terminal=(State.CLOSED,),
    ours=(SEND,),
    table={
        (State.ENVIRONMENT, ENVIRONMENT_BLOCK): State.IDLE,
        (State.IDLE, SEND): State.AWAITING_REPLY,
        (State.IDLE, HANGUP): State.IDLE,
        (State.IDLE, EOF_INPUT): State.CLOSED,
        (State.AWAITING_REPLY, TRYING): State.AWAITING_REPLY,
        (State.AWAITING_REPLY, REPLY): State.IDLE,
        (State.AWAITING_REPLY, USAGE_LINE): State.USAGE,
        (State.AWAITING_REPLY, HANGUP): State.AWAITING_REPLY,
        (State.AWAITING_REPLY, EOF_INPUT): State.CLOSED,
        (State.USAGE, USAGE_LINE): State.USAGE,
        (State.USAGE, REPLY): State.IDLE,
        (State.USAGE, HANGUP): State.USAGE,
    },
)
"""Every transition of a FastAGI connection. Asterisk writes the environment block,
then answers each command with one reply (``100 Trying`` first for GOSUB, a usage text
over several lines for a syntax error); HANGUP may come at any time after the block.
Anything else, EOF inside a block or a usage text included, is refused."""
_TABLE = TRANSITIONS.table


def _kind(line: str) -> str:
    """Which input a line after the environment block is (outside a usage text)."""
    code3 = line[:3]
    after = line[3:4]
    if code3.isdigit() and code3.isascii() and len(code3) == 3:
        if after == " " or not after:
            return TRYING if code3 == "100" else REPLY
        if after == "-":
            return USAGE_LINE if code3 == "520" else CONTINUATION
        return GARBAGE
    if line == "HANGUP":
        return HANGUP
    if line[:4] == "agi_":
        return STRAY_ENV
    return GARBAGE


class Connection(ByteReceiver):
    """One FastAGI connection, seen from the server (fed by ``receive_data``)."""

    __slots__ = (
        "_buf",
        "_env_reader",
        "_eof",
        "_error",
        "_usage",
        "_usage_bytes",
        "environment",
        "hungup",
        "line_limit",
        "max_env_lines",
        "max_line",
        "state",
    )

    def __init__(
        self,
        *,
        line_limit: int = DEFAULT_LINE_LIMIT,
        max_line: int = MAX_LINE,
        max_env_lines: int = MAX_ENV_LINES,
    ) -> None:
        self.line_limit = line_limit
        """Longest command line this Asterisk reads (see commands.DEFAULT_LINE_LIMIT)."""
        self.max_line = max_line
        self.max_env_lines = max_env_lines
        self.state = TRANSITIONS.initial
        self.environment: Environment | None = None
        self.hungup = False
        self._buf = bytearray()
        self._eof = False
        self._env_reader = EnvironmentBlockReader()
        self._usage: list[str] = []
        self._usage_bytes = 0
        self._error: str | None = None

    @property
    def buffered(self) -> int:
        """Bytes received and not yet turned into events."""
        return len(self._buf)

    @property
    def peer_closed(self) -> bool:
        """True once end of file was fed in."""
        return self._eof

    # ------------------------------------------------------------------ input

    def next_event(self) -> Event | NeedData:
        """The next event, or NEED_DATA; raises RemoteProtocolError on bad input."""
        if self.state is State.ERROR:
            raise RemoteProtocolError(self._error or "connection already failed")
        if self.state is State.CLOSED:
            return NEED_DATA
        try:
            if self.state is State.ENVIRONMENT:
                try:
                    env = self._env_reader.read(self._buf, self.max_line, self.max_env_lines)
                except RemoteProtocolError as exc:
                    self._fail(str(exc))
                if env is not None:
                    return self._environment_received(env)
                return self._at_eof() if self._eof else NEED_DATA
            while True:
                buf = self._buf
                end = buf.find(b"\n")
                if end < 0:
                    if len(buf) > self.max_line:
                        self._fail(f"a line longer than {self.max_line} bytes")
                    if self._eof:
                        return self._at_eof()
                    return NEED_DATA
                if end > self.max_line:
                    self._fail(f"a line longer than {self.max_line} bytes")
                line = buf[:end].decode("utf-8", "replace")
                del buf[: end + 1]
                if line.endswith("\r"):
                    line = line[:-1]
                event = self._line(line)
                if event is not None:
                    if buf.startswith(_HANGUP_LINES):
                        # The notice is already here: say so before the reply is acted on,
                        # so no further prompt goes to a channel that is gone.
                        self.hungup = True
                    return event
        except RemoteProtocolError as exc:
            self._error = self._error or str(exc)
            self.state = State.ERROR
            raise

    def _fail(self, message: str) -> None:
        self._error = message
        raise RemoteProtocolError(message)

    def _at_eof(self) -> Event | NeedData:
        if self._buf and self.state is not State.ENVIRONMENT:  # the block's lines stay in
            self._fail("connection closed in the middle of a line")  # the buffer until its end
        state = self.state
        self.state = TRANSITIONS.step(state, EOF_INPUT, lambda: (
            "connection closed before the end of the environment block"
            if state is State.ENVIRONMENT else
            "connection closed in the middle of a usage message"))
        return ConnectionClosed(state is State.AWAITING_REPLY)

    def _line(self, line: str) -> Event | None:
        state = self.state
        if state is State.USAGE:
            kind = HANGUP if line == "HANGUP" else REPLY if line[:4] == "520 " else USAGE_LINE
        else:
            kind = _kind(line)
        nxt = _TABLE.get((state, kind))
        if nxt is None:
            raise TRANSITIONS.refusal(state, kind, self._refused(state, kind, line))
        self.state = nxt
        if kind == REPLY:
            if state is State.USAGE:
                self._usage.append(line)
                text = "\n".join(self._usage)
                self._usage = []
                return Reply(code=520, text=text)
            reply = parse_reply_line(int(line[:3]), line)
            if reply.code == 511:
                self.hungup = True
            return reply
        if kind == HANGUP:
            self.hungup = True
            return HangupNotice()
        if kind == TRYING:
            return Trying(line)
        # USAGE_LINE: a line of the usage text, bounded
        usage = self._usage
        if state is not State.USAGE:
            self._usage_bytes = 0
        usage.append(line)
        self._usage_bytes += len(line) + 1
        if len(usage) > MAX_USAGE_LINES:
            self._fail(f"a usage message longer than {MAX_USAGE_LINES} lines")
        if self._usage_bytes > MAX_USAGE_BYTES:
            self._fail(f"a usage message longer than {MAX_USAGE_BYTES} bytes")
        return None

    @staticmethod
    def _refused(state: State, kind: str, line: str) -> str | None:
        """What to say when the table refuses `kind` in `state` (None: the table's words)."""
        if kind == STRAY_ENV:
            return (f"environment line {line[:80]!r} after the environment block ended: a "
                    "value from the caller or the dialplan (caller ID number or name, DNID, "
                    "RDNIS, extension, the AGI URL or an argument) held a blank line and a "
                    "copy of Asterisk's agi_ lines, so the block seemed to end early; the "
                    "call is refused")
        if kind == HANGUP:
            return None
        if state is not State.AWAITING_REPLY:
            return f"unsolicited line while no command was pending: {line[:80]!r}"
        if kind == CONTINUATION:
            return f"unexpected continuation line: {line[:80]!r}"
        return f"not an AGI reply: {line[:80]!r}"

    def _environment_received(self, env: dict[str, str]) -> EnvironmentReceived:
        """The block is in (agi/environment_reader.py read it, bounds included): what was
        uncertain in it is logged once, and the connection moves on to commands."""
        reader = self._env_reader
        if reader.notes:
            log.warning(
                "AGI environment of channel %s: %s. The call is routed; the caller "
                "data it names is not trusted. Nothing to do unless this repeats: "
                "then look at who calls (the caller ID and the SIP From header).",
                display_text(env.get("agi_channel"), 120),
                "; ".join(reader.notes))
        self.environment = build_environment(env)
        self.state = TRANSITIONS.step(self.state, ENVIRONMENT_BLOCK)
        return EnvironmentReceived(self.environment)

    # ----------------------------------------------------------------- output

    def send(self, command: Command) -> bytes:
        """Bytes for `command`; refuses to pipeline or to talk out of turn."""
        state = self.state
        nxt = _TABLE.get((state, SEND))
        if nxt is None:
            raise TRANSITIONS.refusal(state, SEND, (
                "a command is still waiting for its reply; AGI commands cannot be pipelined"
                if state in (State.AWAITING_REPLY, State.USAGE) else
                f"cannot send a command in state {state.value}"))
        data = encode(command, self.line_limit)
        self.state = nxt
        return data
