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
bounded, so a confused or hostile peer gets a :class:`RemoteProtocolError` rather than
unbounded memory use. :func:`serialize_reply` builds the answer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from enum import Enum

from mailcall.core.sansio import (
    NEED_DATA,
    LocalProtocolError,
    NeedData,
    RemoteProtocolError,
    Transitions,
)

__all__ = [
    "NEED_DATA",
    "TRANSITIONS",
    "Arguments",
    "EndOfInput",
    "Environment",
    "Input",
    "Limits",
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
                raise RemoteProtocolError(f"bad escape sequence at byte {i} of {raw[:64]!r}")
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
    __hash__ = object.__hash__  # members are singletons: the table lookups skip Enum's hash
    VERSION = "version"
    ENV = "environment"
    ARGS = "arguments"
    INPUT = "input"
    DONE = "done"
    ERROR = "error"


# The inputs: which line of the header arrived, the input's bytes, Dovecot's shutdown.
_VERSION_LINE = "version-line"
_ENV_LINE = "env-line"
_ENV_END = "env-end"
"""``-`` or ``noreply``: the environment is over."""
_ARG_LINE = "arg-line"
_ARGS_END = "blank-line"
_OTHER_LINE = "other-line"
"""A line that is none of what the header allows where it came: never allowed."""
_INPUT = "input"
_EOF = "eof"

TRANSITIONS: Transitions[_State] = Transitions(
    "script socket",
    initial=_State.VERSION,
    error=_State.ERROR,
    terminal=(_State.DONE,),
    ours=(),
    table={
        (_State.VERSION, _VERSION_LINE): _State.ENV,
        (_State.ENV, _ENV_LINE): _State.ENV,
        (_State.ENV, _ENV_END): _State.ARGS,
        (_State.ARGS, _ARG_LINE): _State.ARGS,
        (_State.ARGS, _ARGS_END): _State.INPUT,
        (_State.INPUT, _INPUT): _State.INPUT,
        (_State.INPUT, _EOF): _State.DONE,
    },
)
"""Every transition of one request from Dovecot: the VERSION line, ``env_`` lines up to
``-``, argument lines up to a blank line, then input until Dovecot shuts down its side.
End of input inside the header, and any other line, are refused."""
_TABLE = TRANSITIONS.table
_HEADER = frozenset({_State.VERSION, _State.ENV, _State.ARGS})


class ScriptServerConnection:
    """One request from Dovecot, parsed incrementally.

    Events come in a fixed order: :class:`Version`, :class:`Environment`,
    :class:`Arguments`, zero or more :class:`Input`, :class:`EndOfInput`.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._buffer = bytearray()
        self._state = TRANSITIONS.initial
        self._eof = False
        self._env: list[tuple[str, str]] = []
        self._reply_wanted = True
        self._args: list[str] = []
        self._input_seen = 0
        self._pending: deque[Event] = deque()
        self._deferred: RemoteProtocolError | None = None

    @property
    def finished(self) -> bool:
        return self._state is _State.DONE

    def receive_data(self, data: bytes) -> None:
        """Feed bytes read from the socket; ``b""`` means Dovecot shut down its side."""
        if self._state is _State.ERROR:
            raise RemoteProtocolError("connection already failed")
        if self._eof:
            if data:
                raise RemoteProtocolError("data received after end of input")
            return
        if data:
            self._buffer += data
        else:
            self._eof = True

    def next_event(self) -> Event | NeedData:
        """The next complete event, or :data:`NEED_DATA`. Raises :class:`RemoteProtocolError`."""
        try:
            return self._next()
        except RemoteProtocolError:
            self._state = _State.ERROR
            raise

    def _next(self) -> Event | NeedData:
        if self._pending:
            return self._pending.popleft()
        if self._deferred is not None:
            raise self._deferred
        state = self._state
        if state is _State.ERROR:
            raise RemoteProtocolError("connection already failed")
        if state is _State.DONE:
            return NEED_DATA
        if state is not _State.INPUT:
            self._header()
            if self._pending:
                return self._pending.popleft()
            if self._deferred is not None:
                raise self._deferred
            if self._state is not _State.INPUT:
                return NEED_DATA
        return self._next_input()

    def _header(self) -> None:
        """Every complete line of the header, each looked at once and in order. The
        lines are split off in one go (Dovecot sends the header in one write) and the
        buffer is cut once at the end: a message may follow in the same read, and
        cutting it line by line would copy it once per line. Events before a bad line
        are returned before its error is raised."""
        buf = self._buffer
        max_line = self.limits.max_line
        end = buf.find(b"\n\n") + 1  # the blank line that ends the header, when it is in
        if end <= 0:
            end = 0 if buf[:1] == b"\n" else buf.rfind(b"\n")  # else the complete lines
        pos = 0
        try:
            if end >= 0:
                for line in bytes(buf[:end + 1]).split(b"\n")[:-1]:
                    if len(line) > max_line:
                        raise RemoteProtocolError(f"line longer than {max_line} bytes")
                    pos += len(line) + 1
                    event = self._header_line(line)
                    if event is not None:
                        self._pending.append(event)
                    if self._state not in _HEADER:
                        return
            if len(buf) - pos > max_line:
                raise RemoteProtocolError(f"line longer than {max_line} bytes")
            if self._eof:
                raise TRANSITIONS.refusal(self._state, _EOF, (
                    f"connection closed in the middle of the header ({self._state.name})"))
        except RemoteProtocolError as exc:
            self._deferred = exc
        finally:
            del buf[:pos]

    def _header_line(self, line: bytes) -> Event | None:
        """One line of the header: which input it is, where the table leads, its event."""
        state = self._state
        if state is _State.VERSION:
            kind = _VERSION_LINE
        elif state is _State.ENV:
            kind = (_ENV_LINE if line.startswith(b"env_") else
                    _ENV_END if line in (b"-", b"noreply") else _OTHER_LINE)
        else:
            kind = _ARG_LINE if line else _ARGS_END
        nxt = _TABLE.get((state, kind))
        if nxt is None:
            raise TRANSITIONS.refusal(
                state, kind, f"expected env_NAME=value, '-' or 'noreply', got {line[:80]!r}")
        self._state = nxt
        if kind == _VERSION_LINE:
            return self._version(line)
        if kind == _ENV_LINE:
            return self._env_line(line)
        if kind == _ENV_END:
            self._reply_wanted = line == b"-"
            return Environment(tuple(self._env), self._reply_wanted)
        if kind == _ARG_LINE:
            if len(self._args) >= self.limits.max_args:
                raise RemoteProtocolError(f"more than {self.limits.max_args} arguments")
            self._args.append(_text(tab_unescape(line)))
            return None
        return Arguments(tuple(self._args))

    def _version(self, line: bytes) -> Version:
        parts = line.split(b"\t")
        if len(parts) != 4 or parts[0] != b"VERSION":
            raise RemoteProtocolError(f"expected 'VERSION\\tscript\\t4\\t0', got {line[:80]!r}")
        try:
            major, minor = int(parts[2]), int(parts[3])
        except ValueError:
            raise RemoteProtocolError(f"bad version numbers in {line[:80]!r}") from None
        if parts[1] != b"script" or major != 4:
            raise RemoteProtocolError(
                f"unsupported protocol {_text(parts[1])} {major}.{minor} (want script 4)")
        return Version(_text(parts[1]), major, minor)

    def _env_line(self, line: bytes) -> None:
        if len(self._env) >= self.limits.max_env:
            raise RemoteProtocolError(f"more than {self.limits.max_env} environment variables")
        name, sep, value = line[4:].partition(b"=")
        if not sep or not name:
            raise RemoteProtocolError(f"malformed environment line {line[:80]!r}")
        self._env.append((_text(tab_unescape(name)), _text(tab_unescape(value))))

    def _next_input(self) -> Event | NeedData:
        if self._buffer:
            chunk = bytes(self._buffer)
            self._buffer.clear()
            self._input_seen += len(chunk)
            if self._input_seen > self.limits.max_input:
                raise RemoteProtocolError(f"input larger than {self.limits.max_input} bytes")
            self._state = TRANSITIONS.step(self._state, _INPUT)
            return Input(chunk)
        if self._eof:
            self._state = TRANSITIONS.step(self._state, _EOF)
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
            raise LocalProtocolError("an empty argument cannot be sent: a blank line ends the "
                                     "arguments")
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
    raise RemoteProtocolError(f"reply does not end with '+\\n' or '-\\n': {raw[-20:]!r}")
