"""FastAGI without I/O: a connection state machine fed bytes, emitting events.

Modelled on h11: the caller pushes whatever arrived with
:meth:`Connection.receive_data` (``b""`` for end of file), pulls
:meth:`Connection.next_event` until it returns :data:`NEED_DATA`, and asks
:meth:`Connection.send` for the bytes of a command. No socket, no clock: the
server owns those, tests drive this one byte at a time.

What the wire looks like (res_agi.c and the traces in ``shared/asterisk``):

* Asterisk opens with ``agi_name: value`` lines ended by a blank line;
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
import re
from dataclasses import dataclass

from .commands import DEFAULT_LINE_LIMIT, Command, encode
from .environment import Environment, build_environment
from .replies import Reply, parse_reply_line

MAX_LINE = 16384
"""Longest line accepted from Asterisk (its own buffers are 8 KiB at most)."""
MAX_ENV_LINES = 256
"""About 25 fixed variables plus at most 128 arguments."""
MAX_USAGE_LINES = 200
MAX_USAGE_BYTES = 65536
"""A whole multi-line 520 (Asterisk's longest usage texts are a few KiB)."""
MAX_ENV_BYTES = 65536
"""The whole environment block (Asterisk's own AGI argument buffer is far smaller)."""


_KEY_OK = re.compile(r"agi_[a-z0-9_]+").fullmatch
_KEY_OK_B = re.compile(rb"agi_[a-z0-9_]+:").match
_ENV_PAIRS = re.compile(r"^(agi_[a-z0-9_]+): ?([^\n]*)\n", re.M).findall


class RemoteProtocolError(Exception):
    """Asterisk (or whoever connected) sent something FastAGI does not allow."""


class LocalProtocolError(Exception):
    """This side tried something the protocol does not allow (e.g. pipelining)."""


class State(enum.Enum):
    ENVIRONMENT = "environment"
    IDLE = "idle"
    AWAITING_REPLY = "awaiting-reply"
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


class _NeedData:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = _NeedData()

Event = EnvironmentReceived | Reply | Trying | HangupNotice | ConnectionClosed


class Connection:
    """One FastAGI connection, seen from the server."""

    __slots__ = (
        "_buf",
        "_env_checked",
        "_env_lines",
        "_env_scan",
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
        self.state = State.ENVIRONMENT
        self.environment: Environment | None = None
        self.hungup = False
        self._buf = bytearray()
        self._eof = False
        self._env_scan = 0
        self._env_checked = 0
        self._env_lines = 0
        self._usage: list[str] | None = None
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

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed.

        The bytes are copied before this returns: the server reads every
        connection into one shared buffer and hands a view of it here.
        """
        if data:
            if self._eof:
                raise RuntimeError("data received after end of file")
            self._buf += data
        else:
            self._eof = True

    def next_event(self) -> Event | _NeedData:
        """The next event, or NEED_DATA; raises RemoteProtocolError on bad input."""
        if self.state is State.ERROR:
            raise RemoteProtocolError(self._error or "connection already failed")
        if self.state is State.CLOSED:
            return NEED_DATA
        try:
            if self.state is State.ENVIRONMENT:
                event = self._environment_block()
                if event is not None:
                    return event
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
                    return event
        except RemoteProtocolError:
            self.state = State.ERROR
            raise

    def _fail(self, message: str) -> None:
        self._error = message
        raise RemoteProtocolError(message)

    def _at_eof(self) -> Event | _NeedData:
        if self._buf:
            self._fail("connection closed in the middle of a line")
        if self.state is State.ENVIRONMENT:
            self._fail("connection closed before the end of the environment block")
        if self._usage is not None:
            self._fail("connection closed in the middle of a usage message")
        pending = self.state is State.AWAITING_REPLY
        self.state = State.CLOSED
        return ConnectionClosed(pending)

    def _line(self, line: str) -> Event | None:
        state = self.state
        if line[:4] == "200 " and state is State.AWAITING_REPLY and self._usage is None:
            self.state = State.IDLE  # the usual answer: skip the general checks below
            return parse_reply_line(200, line)
        if line == "HANGUP":
            self.hungup = True
            return HangupNotice()
        if state is not State.AWAITING_REPLY:
            self._fail(f"unsolicited line while no command was pending: {line[:80]!r}")
        usage = self._usage
        if usage is not None:
            usage.append(line)
            self._usage_bytes += len(line) + 1
            if line.startswith("520 "):
                self._usage = None
                return self._reply(Reply(code=520, text="\n".join(usage)))
            if len(usage) > MAX_USAGE_LINES:
                self._fail(f"a usage message longer than {MAX_USAGE_LINES} lines")
            if self._usage_bytes > MAX_USAGE_BYTES:
                self._fail(f"a usage message longer than {MAX_USAGE_BYTES} bytes")
            return None
        code3 = line[:3]
        if (len(line) < 3 or not code3.isascii() or not code3.isdigit()
                or (len(line) > 3 and line[3] not in " -")):
            self._fail(f"not an AGI reply: {line[:80]!r}")
        code = int(code3)
        if len(line) > 3 and line[3] == "-":
            if code != 520:
                self._fail(f"unexpected continuation line: {line[:80]!r}")
            self._usage = [line]
            self._usage_bytes = len(line) + 1
            return None
        if code == 100:
            return Trying(line)
        return self._reply(parse_reply_line(code, line))

    def _reply(self, reply: Reply) -> Reply:
        if reply.code == 511:
            self.hungup = True
        self.state = State.IDLE
        return reply

    def _check_partial_env(self, buf: bytearray) -> None:
        """Reject a bad block early (garbage, an HTTP request...) instead of at its end."""
        start = self._env_checked
        lines = self._env_lines
        while (nl := buf.find(b"\n", start)) >= 0:
            if not _KEY_OK_B(buf, start) or buf.find(b":", start, nl) < 0:
                line = bytes(buf[start:nl]).decode("utf-8", "replace")
                self._fail(f"not an agi_ environment line: {line[:80]!r}")
            lines += 1
            if lines > self.max_env_lines:
                self._fail(f"an environment block longer than {self.max_env_lines} lines")
            start = nl + 1
        self._env_checked, self._env_lines = start, lines

    def _environment_block(self) -> EnvironmentReceived | None:
        """Parse the whole ``agi_*`` block at once, when its blank line is in.

        One C-level search for the blank line instead of one Python step per
        line: the block is most of what a short session reads. The search
        resumes where it stopped, so a peer sending one byte at a time costs
        linear time, and every bound is checked before the block is complete.
        """
        buf = self._buf
        if buf[:1] == b"\n":
            end = 0
        else:
            end = buf.find(b"\n\n", max(self._env_scan - 1, 0))
            if end < 0:
                self._env_scan = len(buf)
                if len(buf) > MAX_ENV_BYTES:
                    self._fail(f"an environment block longer than {MAX_ENV_BYTES} bytes")
                last = buf.rfind(b"\n", max(0, len(buf) - self.max_line - 1))
                if len(buf) - last - 1 > self.max_line:
                    self._fail(f"a line longer than {self.max_line} bytes")
                self._check_partial_env(buf)
                return None
            end += 1
        if end > MAX_ENV_BYTES:
            self._fail(f"an environment block longer than {MAX_ENV_BYTES} bytes")
        text = buf[:end].decode("utf-8", "replace") if end else ""
        del buf[: end + 1]
        count = text.count("\n")
        if count > self.max_env_lines:
            self._fail(f"an environment block longer than {self.max_env_lines} lines")
        # Fast path: one regex pass over the block; any doubt falls back to the
        # line-by-line loop below, which names the offending line.
        pairs = _ENV_PAIRS(text)
        if len(pairs) == count and "\r" not in text:
            env = dict(pairs)
            # A block no longer than max_line cannot hold a longer line.
            short = len(text) <= self.max_line
            if len(env) == count and (short or max(map(len, text.split("\n"))) <= self.max_line):
                self.environment = build_environment(env)
                self.state = State.IDLE
                return EnvironmentReceived(self.environment)
        lines = text.split("\n")[:-1]
        env = {}
        for line in lines:
            if len(line) > self.max_line:
                self._fail(f"a line longer than {self.max_line} bytes")
            key, sep, value = line.partition(": ")
            if not sep:
                key, sep, value = line.rstrip("\r").partition(":")
            if not sep or not _KEY_OK(key):
                self._fail(f"not an agi_ environment line: {line[:80]!r}")
            if key in env:
                self._fail(f"environment variable {key} sent twice")
            env[key] = value[:-1] if value.endswith("\r") else value
        self.environment = build_environment(env)
        self.state = State.IDLE
        return EnvironmentReceived(self.environment)

    # ----------------------------------------------------------------- output

    def send(self, command: Command) -> bytes:
        """Bytes for `command`; refuses to pipeline or to talk out of turn."""
        if self.state is not State.IDLE:
            if self.state is State.AWAITING_REPLY:
                raise LocalProtocolError(
                    "a command is still waiting for its reply; AGI commands cannot be pipelined"
                )
            raise LocalProtocolError(f"cannot send a command in state {self.state.value}")
        data = encode(command, self.line_limit)
        self.state = State.AWAITING_REPLY
        return data
