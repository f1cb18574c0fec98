"""FastAGI without I/O: a connection state machine fed bytes, emitting events.

Modelled on h11: the caller pushes whatever arrived with
:meth:`Connection.receive_data` (``b""`` for end of file), pulls
:meth:`Connection.next_event` until it returns :data:`NEED_DATA`, and asks
:meth:`Connection.send` for the bytes of a command. No socket, no clock: the
server owns those, tests drive this one byte at a time.

What the wire looks like (res_agi.c and the traces in ``shared/asterisk``):

* Asterisk opens with ``agi_name: value`` lines ended by a blank line, in the
  fixed order of res_agi.c ``setup_env`` (see :class:`_EnvReader` for how a
  caller's line breaks inside a value are read);
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
import re
from dataclasses import dataclass

from mailcall.core.sansio import (
    NEED_DATA,
    ByteReceiver,
    LocalProtocolError,
    NeedData,
    RemoteProtocolError,
)
from mailcall.core.text import display_text

from .commands import DEFAULT_LINE_LIMIT, Command, encode
from .environment import Environment, build_environment
from .replies import Reply, parse_reply_line

log = logging.getLogger("mailcall.agi.protocol")

MAX_LINE = 16384
"""Longest line accepted from Asterisk (its own buffers are 8 KiB at most)."""
MAX_ENV_LINES = 256
"""About 25 fixed variables plus at most 128 arguments."""
MAX_USAGE_LINES = 200
MAX_USAGE_BYTES = 65536
"""A whole multi-line 520 (Asterisk's longest usage texts are a few KiB)."""
MAX_ENV_BYTES = 65536
"""The whole environment block (Asterisk's own AGI argument buffer is far smaller)."""


_ENV_PAIRS = re.compile(r"^(agi_[a-z0-9_]+): ?([^\n]*)\n", re.M).findall
_HANGUP_LINES = (b"HANGUP\n", b"HANGUP\r\n")
_KEY_LINE = re.compile(r"(agi_[a-z0-9_]+):").match
_IS_ARG = re.compile(r"agi_arg_[0-9]+").fullmatch

SETUP_ENV_ORDER = (
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language",
    "agi_type", "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname",
    "agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_dnid",
    "agi_rdnis", "agi_context", "agi_extension", "agi_priority", "agi_enhanced",
    "agi_accountcode", "agi_threadid",
)
"""The variables Asterisk writes, in the order it writes them: ``launch_netscript``
(``agi_network``, ``agi_network_script`` only when the URL has a path) then
``setup_env`` (res_agi.c), which ends with ``agi_arg_1`` .. ``agi_arg_N`` and the
blank line. Unchanged from Asterisk 13 to master."""
_RANK = {key: rank for rank, key in enumerate(SETUP_ENV_ORDER)}
_ARG_NAMES = tuple(f"agi_arg_{n}" for n in range(1, MAX_ENV_LINES + 1))
_WHOLE_BLOCK = re.compile("".join(
    f"(?:{key}: ?([^\\n]*)\\n)?" if key == "agi_network_script" else f"{key}: ?([^\\n]*)\\n"
    for key in SETUP_ENV_ORDER) + r"((?:agi_arg_[0-9]+: ?[^\n]*\n)*)").fullmatch
"""The usual block in one pass: every variable once, in order, each on its own line."""


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



Event = EnvironmentReceived | Reply | Trying | HangupNotice | ConnectionClosed


class _EnvError(Exception):
    """Raised by :class:`_EnvReader`; the connection turns it into a RemoteProtocolError."""


_RUNS = (
    ("agi_channel", "agi_language", "agi_type", "agi_uniqueid", "agi_version"),
    ("agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns"),
    ("agi_context",),
    ("agi_priority", "agi_enhanced"),
    ("agi_threadid",),
)
"""Asterisk's own values, one line each, in runs: between two runs come the values
that may hold line breaks (the groups of :data:`_GROUPS`)."""
_GROUPS = (
    ("agi_callerid", "agi_calleridname"),
    ("agi_dnid", "agi_rdnis"),
    ("agi_extension",),
    ("agi_accountcode",),
)
_LAST_WINS = (False, True, True, True, False)
"""Per run, which of several possible copies is Asterisk's: the last one where the
value before the run is the one a caller fills (a forged copy there comes first),
the first one where the value after it is (the caller's number and name after
agi_version, the dialplan's arguments after agi_threadid)."""
_CALLER_PAIRS = frozenset({"agi_calleridname", "agi_rdnis"})
"""Second fields of the two caller-controlled pairs: a split between them is a guess."""
_ARG_COPY = re.compile(r"agi_arg_[0-9]+:").match
_FORMATTED = {key: re.compile(pattern).fullmatch for keys, pattern in (
    (("agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_priority",
      "agi_threadid"), r"-?[0-9]+"),
    (("agi_enhanced",), r"[0-9]\.[0-9]"),
) for key in keys}
"""Values Asterisk formats itself (``%d``, ``%ld``, ``"1.0"``): a copy that is not so
formatted is no run of Asterisk's lines."""


class _Item:
    """One line of the block: ``key`` is a name Asterisk writes (None for other text)."""

    __slots__ = ("key", "raw", "value")

    def __init__(self, key: str | None, raw: str, value: str) -> None:
        self.key, self.raw, self.value = key, raw, value


class _EnvReader:
    """Reads the environment block line by line, as res_agi.c writes it.

    ``setup_env`` writes ``agi_NAME: value\\n`` with the raw value, so a value
    holding CR or LF (PJSIP decodes ``%0d%0a`` in a SIP From user) spreads over
    several lines: ``agi_callerid: \\r`` then ``Bcc: x@evil``, a blank line, or
    a copy of one of Asterisk's own lines (``1\\nagi_context: x``). The order of
    the names never changes, and most values are Asterisk's own, one line each
    (:data:`_RUNS`); only the values between those runs can hold a caller's
    text. So the block is read as whole: every way of cutting it into
    :data:`SETUP_ENV_ORDER` that keeps each run of Asterisk's lines together is
    a candidate, and

    * a copy of a name out of its place is the text of the value it is in;
    * when a run of Asterisk's lines appears more than once, the copy on the
      side the caller cannot write wins (:data:`_LAST_WINS`), so nothing a
      caller wrote replaces one of Asterisk's values;
    * when the cut between two caller values (number and name, DNID and RDNIS)
      is uncertain, both become ``unknown`` and a WARNING is logged: the call
      is routed, with nothing taken from text whose end is a guess;
    * a blank line ends the block once the lines so far cut into a whole
      block; before that, it is a line break inside a value;
    * a name Asterisk does not write (a newer Asterisk may add one) is kept as
      a variable of its own, with the lines that follow it.

    Values are kept exactly as sent, CR included, and shown only through
    :func:`mailcall.core.text.display_text`. A copy of a run counts only when
    it is written as Asterisk writes it (``agi_NAME: value``, numbers as
    numbers), so a caller can fake Asterisk's values only with a copy of a
    whole run and the name after it, from the side :data:`_LAST_WINS` trusts:
    84 bytes at least from a SIP caller value (more than the 79 PJSIP keeps),
    or through a dialplan value that carries caller text (the AGI URL, an
    extension matched by a ``.`` pattern, the account code).

    A value that holds a whole forged tail and a blank line ends the block
    early. The real rest then arrives where replies are due and the
    connection refuses it (see :meth:`Connection._line`): Asterisk writes the
    whole block before it reads a command, so it comes before any reply; the
    server starts no handler before the read that brought the block is
    consumed, and every handler's first command, ``SET VARIABLE
    CHANNEL(language)``, acts on nothing.
    """

    __slots__ = ("env", "extra", "items", "notes")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.extra: dict[str, list[str]] = {}
        """Variables Asterisk does not write, by name: their lines."""
        self.env: dict[str, str] = {}
        self.notes: list[str] = []
        """What was uncertain in the block (for the one WARNING)."""

    def feed(self, line: str) -> bool:
        """One line of the block, without its LF; True when it was the closing blank line."""
        items = self.items
        if not line:
            if not items:
                raise _EnvError("an empty environment block (a blank line before agi_network)")
            if len(items) == 1:
                raise _EnvError("the environment block ends after agi_network, before "
                                "agi_threadid: not a whole Asterisk environment (Asterisk "
                                "writes agi_network_script or agi_request next)")
            if self._read():
                return True
            if items[-1].key == "":
                self.extra[items[-1].value].append("")
            else:
                items.append(_Item(None, "", ""))
            return False
        match = _KEY_LINE(line)
        key = match.group(1) if match is not None else None
        if not items:
            if key is None:
                raise _EnvError(f"not an agi_ environment line: {line[:80]!r}")
            if key != "agi_network":
                raise _EnvError(f"not a FastAGI environment: it starts with {key}, "
                                "not agi_network")
        else:
            if key is not None and key not in _RANK and not _IS_ARG(key):
                if key not in self.extra:  # a name Asterisk does not write: a variable of its own
                    value = line[match.end():]  # type: ignore[union-attr]
                    self.extra[key] = [value[1:] if value[:1] == " " else value]
                    items.append(_Item("", "", key))  # marks where its lines go
                    return False
                key = None  # a second copy: text of the value before it
            if key is None and items[-1].key == "":
                self.extra[items[-1].value].append(line)
                return False
        if len(items) == 1 and key not in ("agi_network_script", "agi_request"):
            raise _EnvError(f"{line[:80]!r} after agi_network, which Asterisk writes as one "
                            "word, where agi_network_script or agi_request is due: not an "
                            "Asterisk environment block")
        if key is None:
            items.append(_Item(None, line, line))
        else:
            value = line[match.end():]  # type: ignore[union-attr]
            items.append(_Item(key, line, value[1:] if value[:1] == " " else value))
        return False

    def _read(self) -> bool:
        """Cut the lines so far into a whole block; False when they are not one (yet)."""
        items = [item for item in self.items if item.key != ""]
        keys = [item.key for item in items]
        if "agi_threadid" not in keys:
            return False
        n = len(items)

        def fits(index: int, p: int) -> bool:
            """Run `index` can stand at `p`: its names on consecutive lines, then the next."""
            run = _RUNS[index]
            end = p + len(run)
            if end > n or tuple(keys[p:end]) != run:
                return False
            for item in items[p:end]:  # "agi_%s: %s\n": Asterisk always writes the space
                if item.raw[len(item.key) + 1:len(item.key) + 2] != " " or (
                        item.key in _FORMATTED and not _FORMATTED[item.key](item.value)):
                    return False
            if index == len(_GROUPS):  # agi_threadid: the arguments or the end follow
                return end == n or keys[end] == "agi_arg_1"
            return end < n and keys[end] == _GROUPS[index][0]

        def room(index: int, p: int) -> int | None:
            """Lowest place for the run after run `index` at `p`: its group comes between."""
            begin = p + len(_RUNS[index])
            group = _GROUPS[index]
            if len(group) == 1:
                return begin + 1
            second = next((c for c in range(begin + 1, n) if keys[c] == group[1]), None)
            return None if second is None else second + 1

        if keys[1] == "agi_request":
            low: int | None = 2
        else:
            low = next((c + 1 for c in range(2, n) if keys[c] == "agi_request"), None)
        if low is None:
            return False
        # Backwards: the places of each run that leave room for all the later ones.
        viable: list[list[int]] = [[] for _ in _RUNS]
        for index in range(len(_RUNS) - 1, -1, -1):
            later = max(viable[index + 1], default=-1) if index + 1 < len(_RUNS) else None
            viable[index] = [
                p for p in range(2, n) if fits(index, p)
                and (later is None or ((r := room(index, p)) is not None and later >= r))]
        notes: list[str] = []
        chosen: list[int] = []
        for index, last_wins in enumerate(_LAST_WINS):
            places = [p for p in viable[index] if p >= low]  # type: ignore[operator]
            if not places:
                return False
            p = places[-1] if last_wins else places[0]
            run = _RUNS[index]
            if len({tuple(items[q + i].value for i in range(len(run))) for q in places}) > 1:
                notes.append(f"{run[0]} is written more than once (a caller value holds "
                             f"copies of Asterisk's lines): the {'last' if last_wins else 'first'}"
                             f" copy was taken as Asterisk's")
            chosen.append(p)
            if index < len(_GROUPS):
                low = room(index, p)
        self.notes = notes
        self.env = self._values(items, chosen)
        for key, lines in self.extra.items():
            self.env.setdefault(key, "\n".join(lines))
        return True

    def _values(self, items: list[_Item], chosen: list[int]) -> dict[str, str]:
        """The variables, once `chosen` says where each run of Asterisk's lines stands."""
        keys = [item.key for item in items]
        n = len(items)
        starts: list[tuple[str, int]] = [("agi_network", 0)]
        if keys[1] == "agi_network_script":
            starts.append(("agi_network_script", 1))
            starts.append(("agi_request", self._request(items, chosen[0])))
        else:
            starts.append(("agi_request", 1))
        unknown: list[str] = []
        for index, p in enumerate(chosen):
            run = _RUNS[index]
            starts.extend((key, p + i) for i, key in enumerate(run))
            if index == len(_GROUPS):
                break
            group = _GROUPS[index]
            begin = p + len(run)
            starts.append((group[0], begin))
            if len(group) == 2:
                second = [c for c in range(begin + 1, chosen[index + 1]) if keys[c] == group[1]]
                starts.append((group[1], second[0]))
                if len(second) > 1:
                    unknown.extend(group)
                    self.notes.append(f"{group[0]} or {group[1]} holds a copy of the line "
                                      f"{group[1]}: where one ends and the other begins is a "
                                      "guess, so both are taken as unknown")
        arg = 0
        copied = False
        for c in range(chosen[-1] + 1, n):
            if keys[c] == f"agi_arg_{arg + 1}":
                arg += 1
                starts.append((f"agi_arg_{arg}", c))
            elif _ARG_COPY(items[c].raw):
                copied = True
        if copied:
            self.notes.append("an AGI argument holds a copy of an agi_arg_ line: the dialplan "
                              "passed text with a line break, and the arguments may be cut in "
                              "the wrong place")
        env = {key: "\n".join([items[at].value, *(item.raw for item in items[at + 1:end])])
               for (key, at), (_, end) in zip(starts, [*starts[1:], ("", n)], strict=True)}
        for key in unknown:
            env[key] = "unknown"
        return env

    def _request(self, items: list[_Item], stop: int) -> int:
        """Where agi_request begins when agi_network_script holds a copy of its line.

        Asterisk writes the URL, which ends in ``/`` and the script: the cut that
        keeps that true is the real one; when none or several do, the first.
        """
        cands = [c for c in range(2, stop) if items[c].key == "agi_request"]
        if len(cands) == 1:
            return cands[0]
        kept = []
        for c in cands:
            script = "\n".join([items[1].value, *(item.raw for item in items[2:c])])
            url = "\n".join([items[c].value, *(item.raw for item in items[c + 1:stop])])
            if url.endswith("/" + script):
                kept.append(c)
        if len(kept) != 1:
            self.notes.append("agi_network_script holds a copy of the line agi_request: the "
                              "AGI URL in the dialplan carries text with a line break, and "
                              "the script name may be cut in the wrong place")
        return (kept or cands)[0]


class Connection(ByteReceiver):
    """One FastAGI connection, seen from the server (fed by ``receive_data``)."""

    __slots__ = (
        "_buf",
        "_env_lines",
        "_env_reader",
        "_env_scan",
        "_env_seen",
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
        self._env_reader: _EnvReader | None = None
        self._env_scan = 0
        """Where the next environment line starts in the buffer."""
        self._env_seen = 0
        """How far the buffer was searched for a line end, in vain."""
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

    def next_event(self) -> Event | NeedData:
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
                    if buf.startswith(_HANGUP_LINES):
                        # The notice is already here: say so before the reply is acted on,
                        # so no further prompt goes to a channel that is gone.
                        self.hungup = True
                    return event
        except RemoteProtocolError:
            self.state = State.ERROR
            raise

    def _fail(self, message: str) -> None:
        self._error = message
        raise RemoteProtocolError(message)

    def _at_eof(self) -> Event | NeedData:
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
        if line[:4] == "agi_" and self._usage is None:
            self._fail(f"environment line {line[:80]!r} after the environment block ended: a "
                       "value from the caller or the dialplan (caller ID number or name, DNID, "
                       "RDNIS, extension, the AGI URL or an argument) held a blank line and a "
                       "copy of Asterisk's agi_ lines, so the block seemed to end early; the "
                       "call is refused")
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

    def _environment_block(self) -> EnvironmentReceived | None:
        """The ``agi_*`` block, once its closing blank line is in.

        A block that arrives whole with one variable per line in setup_env's
        order (nearly every call) is parsed by one regex pass. Anything else,
        and a block arriving in pieces, is read line by line by
        :class:`_EnvReader`, which checks every bound as the bytes come in and
        resumes where it stopped, so a peer sending one byte at a time costs
        linear time.
        """
        buf = self._buf
        reader = self._env_reader
        if reader is None:
            end = buf.find(b"\n\n")
            if end >= 0:
                event = self._whole_block(end + 1)
                if event is not None:
                    return event
            reader = self._env_reader = _EnvReader()
        start = self._env_scan
        lines = self._env_lines
        max_line = self.max_line
        while (nl := buf.find(b"\n", max(start, self._env_seen))) >= 0:
            if nl - start > max_line:
                self._fail(f"a line longer than {max_line} bytes")
            lines += 1
            if lines > self.max_env_lines:
                self._fail(f"an environment block longer than {self.max_env_lines} lines")
            line = buf[start:nl].decode("utf-8", "replace")
            start = nl + 1
            if start > MAX_ENV_BYTES:
                self._fail(f"an environment block longer than {MAX_ENV_BYTES} bytes")
            try:
                done = reader.feed(line)
            except _EnvError as exc:
                self._fail(str(exc))
            if done:
                del buf[:start]
                self._env_reader = None
                self._env_scan = self._env_seen = self._env_lines = 0
                if reader.notes:
                    log.warning(
                        "AGI environment of channel %s: %s. The call is routed; the caller "
                        "data it names is not trusted. Nothing to do unless this repeats: "
                        "then look at who calls (the caller ID and the SIP From header).",
                        display_text(reader.env.get("agi_channel"), 120),
                        "; ".join(reader.notes))
                return self._environment_ready(reader.env)
        self._env_scan, self._env_seen, self._env_lines = start, len(buf), lines
        if len(buf) - start > max_line:
            self._fail(f"a line longer than {max_line} bytes")
        if len(buf) > MAX_ENV_BYTES:
            self._fail(f"an environment block longer than {MAX_ENV_BYTES} bytes")
        return None

    def _whole_block(self, end: int) -> EnvironmentReceived | None:
        """The block ``buf[:end]`` if it is one variable per line in setup_env's order."""
        if end > MAX_ENV_BYTES:
            return None  # the line-by-line reader reports it
        buf = self._buf
        text = buf[:end].decode("utf-8", "replace")
        if text.count("\n") > self.max_env_lines:
            return None
        # A block no longer than max_line cannot hold a longer line.
        if len(text) > self.max_line and max(map(len, text.split("\n"))) > self.max_line:
            return None
        match = _WHOLE_BLOCK(text)
        if match is None:
            return None
        values = match.groups()
        env = dict(zip(SETUP_ENV_ORDER, values[:-1], strict=True))  # [-1]: the arguments
        if values[1] is None:
            del env["agi_network_script"]
        if args := values[-1]:
            pairs = _ENV_PAIRS(args)
            if len(pairs) > len(_ARG_NAMES) or any(
                    key != name for (key, _), name in zip(pairs, _ARG_NAMES, strict=False)):
                return None  # numbered out of order: the reader names the line
            env.update(pairs)
        del buf[: end + 1]
        return self._environment_ready(env)

    def _environment_ready(self, variables: dict[str, str]) -> EnvironmentReceived:
        self.environment = build_environment(variables)
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
