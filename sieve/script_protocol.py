"""Dovecot's script-socket protocol, server side, without any I/O (h11 style).

When a Sieve ``execute``/``pipe``/``filter`` program name is a UNIX socket in
``sieve_<ext>_socket_dir``, Dovecot (lib-program-client, program-client-remote.c
lines 20-26 and 282-310 in 2.3.19) connects and sends::

    VERSION\\tscript\\t4\\t0\\n
    env_USER=...\\n ... (one line per environment variable)
    -\\n                  (or "noreply\\n"; Pigeonhole always sends "-")
    arg1\\n arg2\\n ...
    \\n
    <input: the message or the :input string, verbatim>   then shutdown(SHUT_WR)

Environment values and arguments are escaped with ``str_tabescape``: byte 0x01
followed by ``1``, ``t``, ``r``, ``n`` or ``0`` stands for 0x01, TAB, CR, LF,
NUL (lib/strescape.c lines 136-166). The reply is the program's output followed
by exactly ``+\\n`` (success, "true") or ``-\\n`` (failure); Dovecot takes the
last two bytes as the result (see shared/dovecot/README.md).

:class:`ScriptServerConnection` is fed bytes with :meth:`receive_data` (``b""``
means end of input) and yields events from :meth:`next_event`. Every part is
bounded, so a confused or hostile peer gets a :class:`ProtocolError` rather than
unbounded memory use. :func:`serialize_reply` builds the answer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from mailcall.core.sansio import NEED_DATA, NeedData, RemoteProtocolError

__all__ = [
    "NEED_DATA",
    "Arguments",
    "EndOfInput",
    "Environment",
    "Input",
    "Limits",
    "ProtocolError",
    "ScriptServerConnection",
    "Version",
    "parse_reply",
    "serialize_reply",
    "serialize_request",
    "tab_escape",
    "tab_unescape",
]

_ESCAPES = {ord("1"): b"\x01", ord("t"): b"\t", ord("r"): b"\r", ord("n"): b"\n", ord("0"): b"\0"}
_ESCAPE_OF = {0x01: b"\x011", 0x09: b"\x01t", 0x0D: b"\x01r", 0x0A: b"\x01n", 0x00: b"\x010"}


ProtocolError = RemoteProtocolError
"""The peer broke the protocol; the connection should be answered ``-`` and closed."""


@dataclass(frozen=True, slots=True)
class Version:
    service: str
    major: int
    minor: int


@dataclass(frozen=True, slots=True)
class Environment:
    """All ``env_NAME=value`` lines, unescaped, in the order received."""

    variables: tuple[tuple[str, str], ...]
    reply_wanted: bool
    """False when Dovecot sent "noreply" (it then ignores our answer)."""

    def get(self, name: str, default: str = "") -> str:
        for key, value in self.variables:
            if key == name:
                return value
        return default


@dataclass(frozen=True, slots=True)
class Arguments:
    """The program's arguments (after the program name), unescaped, as text."""

    args: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Input:
    """A chunk of the program's standard input (the message or the ``:input`` string)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfInput:
    """Dovecot shut down its side: the request is complete."""


Event = Version | Environment | Arguments | Input | EndOfInput


@dataclass(frozen=True, slots=True)
class Limits:
    """Upper bounds that keep one connection's memory small.

    Dovecot itself refuses arguments over 1024 bytes (sieve-extprograms-common.c),
    so the defaults leave room while still bounding a hostile peer.
    """

    max_line: int = 8192
    max_env: int = 64
    max_args: int = 64
    max_input: int = 1 << 20
    """Input beyond this is an error; callers that only need headers should ask less."""


def tab_unescape(raw: bytes) -> bytes:
    """Undo ``str_tabescape`` (lib/strescape.c): 0x01 + code -> the byte it stands for."""
    if b"\x01" not in raw:
        return raw
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        byte = raw[i]
        if byte == 0x01:
            if i + 1 >= n or raw[i + 1] not in _ESCAPES:
                raise ProtocolError(f"bad escape sequence at byte {i} of {raw[:64]!r}")
            out += _ESCAPES[raw[i + 1]]
            i += 2
        else:
            out.append(byte)
            i += 1
    return bytes(out)


def tab_escape(raw: bytes) -> bytes:
    """``str_tabescape``: the inverse of :func:`tab_unescape` (used by the exec client)."""
    return b"".join(_ESCAPE_OF.get(b, bytes((b,))) for b in raw)


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", errors="surrogateescape")


class _State(Enum):
    VERSION = 1
    ENV = 2
    ARGS = 3
    INPUT = 4
    DONE = 5
    ERROR = 6


class ScriptServerConnection:
    """One request from Dovecot, parsed incrementally.

    Events come in a fixed order: :class:`Version`, :class:`Environment`,
    :class:`Arguments`, zero or more :class:`Input`, :class:`EndOfInput`.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buffer = bytearray()
        self._state = _State.VERSION
        self._eof = False
        self._env: list[tuple[str, str]] = []
        self._reply_wanted = True
        self._args: list[str] = []
        self._input_seen = 0
        self._pending: deque[Event] = deque()
        self._deferred: ProtocolError | None = None

    @property
    def finished(self) -> bool:
        return self._state is _State.DONE

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket; ``b""`` means Dovecot shut down its side."""
        if self._state is _State.ERROR:
            raise ProtocolError("connection already failed")
        if self._eof:
            if data:
                raise ProtocolError("data received after end of input")
            return
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """The next complete event, or :data:`NEED_DATA`. Raises :class:`ProtocolError`."""
        try:
            return self._next()
        except ProtocolError:
            self._state = _State.ERROR
            raise

    def _line(self) -> bytes | None:
        idx = self._buffer.find(b"\n")
        if idx < 0:
            if len(self._buffer) > self.limits.max_line:
                raise ProtocolError(f"line longer than {self.limits.max_line} bytes")
            if self._eof:
                raise ProtocolError(
                    f"connection closed in the middle of the header ({self._state.name})")
            return None
        if idx > self.limits.max_line:
            raise ProtocolError(f"line longer than {self.limits.max_line} bytes")
        line = bytes(self._buffer[:idx])
        del self._buffer[: idx + 1]
        return line

    def _next(self) -> Event | NeedData:
        if self._pending:
            return self._pending.popleft()
        if self._deferred is not None:
            raise self._deferred
        if self._state is _State.VERSION:
            end = self._buffer.find(b"\n\n")
            if end >= 0:
                return self._whole_header(end)
        while True:
            state = self._state
            if state is _State.ERROR:
                raise ProtocolError("connection already failed")
            if state is _State.DONE:
                return NEED_DATA
            if state is _State.INPUT:
                return self._next_input()
            line = self._line()
            if line is None:
                return NEED_DATA
            if state is _State.VERSION:
                return self._version(line)
            if state is _State.ENV:
                event = self._env_line(line)
            else:
                event = self._arg_line(line)
            if event is not None:
                return event

    def _whole_header(self, end: int) -> Event:
        """Fast path: the header is complete (Dovecot sends it in one write), so split it
        once instead of line by line. Same checks, same events, same errors, in the same
        order: events before a bad line are still returned before its error is raised."""
        lines = bytes(self._buffer[:end]).split(b"\n")
        del self._buffer[: end + 2]
        lines.append(b"")
        events = self._pending
        try:
            for line in lines:
                if len(line) > self.limits.max_line:
                    raise ProtocolError(f"line longer than {self.limits.max_line} bytes")
                state = self._state
                if state is _State.VERSION:
                    event: Event | None = self._version(line)
                elif state is _State.ENV:
                    event = self._env_line(line)
                else:
                    event = self._arg_line(line)
                if event is not None:
                    events.append(event)
        except ProtocolError as exc:
            self._deferred = exc
        # The first blank line always ends the arguments (values are escaped and cannot
        # hold LF; a blank line before them is an error raised above).
        if events:
            return events.popleft()
        assert self._deferred is not None
        raise self._deferred

    def _version(self, line: bytes) -> Version:
        parts = line.split(b"\t")
        if len(parts) != 4 or parts[0] != b"VERSION":
            raise ProtocolError(f"expected 'VERSION\\tscript\\t4\\t0', got {line[:80]!r}")
        try:
            major, minor = int(parts[2]), int(parts[3])
        except ValueError:
            raise ProtocolError(f"bad version numbers in {line[:80]!r}") from None
        if parts[1] != b"script" or major != 4:
            raise ProtocolError(
                f"unsupported protocol {_text(parts[1])} {major}.{minor} (want script 4)")
        self._state = _State.ENV
        return Version(_text(parts[1]), major, minor)

    def _env_line(self, line: bytes) -> Environment | None:
        if line.startswith(b"env_"):
            if len(self._env) >= self.limits.max_env:
                raise ProtocolError(f"more than {self.limits.max_env} environment variables")
            name, sep, value = line[4:].partition(b"=")
            if not sep or not name:
                raise ProtocolError(f"malformed environment line {line[:80]!r}")
            self._env.append((_text(tab_unescape(name)), _text(tab_unescape(value))))
            return None
        if line in (b"-", b"noreply"):
            self._reply_wanted = line == b"-"
            self._state = _State.ARGS
            return Environment(tuple(self._env), self._reply_wanted)
        raise ProtocolError(f"expected env_NAME=value, '-' or 'noreply', got {line[:80]!r}")

    def _arg_line(self, line: bytes) -> Arguments | None:
        if line == b"":
            self._state = _State.INPUT
            return Arguments(tuple(self._args))
        if len(self._args) >= self.limits.max_args:
            raise ProtocolError(f"more than {self.limits.max_args} arguments")
        self._args.append(_text(tab_unescape(line)))
        return None

    def _next_input(self) -> Event | NeedData:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            self._input_seen += len(chunk)
            if self._input_seen > self.limits.max_input:
                raise ProtocolError(f"input larger than {self.limits.max_input} bytes")
            return Input(chunk)
        if self._eof:
            self._state = _State.DONE
            return EndOfInput()
        return NEED_DATA


def serialize_reply(success: bool, output: bytes = b"") -> bytes:
    """The answer: the program's output, then exactly ``+\\n`` or ``-\\n``.

    Dovecot reads the last two bytes as the verdict, so the output may contain
    anything; it is used as-is by ``execute :output``.
    """
    return bytes(output) + (b"+\n" if success else b"-\n")


def serialize_request(
    args: list[str] | tuple[str, ...],
    env: dict[str, str] | None = None,
    data: bytes = b"",
) -> bytes:
    """What Dovecot would send for `args`: used by the exec client and by tests."""
    out = [b"VERSION\tscript\t4\t0\n"]
    for name, value in (env or {}).items():
        out.append(b"env_" + tab_escape(name.encode()) + b"=" + tab_escape(value.encode()) + b"\n")
    out.append(b"-\n")
    for arg in args:
        if not arg:
            raise ValueError("an empty argument cannot be sent: a blank line ends the arguments")
        out.append(tab_escape(arg.encode("utf-8", errors="surrogateescape")) + b"\n")
    out.append(b"\n")
    out.append(data)
    return b"".join(out)


def parse_reply(raw: bytes) -> tuple[bool, bytes]:
    """Split a reply into (success, output), as Dovecot does with the last two bytes."""
    if raw.endswith(b"+\n"):
        return True, raw[:-2]
    if raw.endswith(b"-\n"):
        return False, raw[:-2]
    raise ProtocolError(f"reply does not end with '+\\n' or '-\\n': {raw[-20:]!r}")
