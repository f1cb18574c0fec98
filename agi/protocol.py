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
    LocalProtocolError,  # noqa: F401  (re-exported: what send() raises)
    NeedData,
    RemoteProtocolError,
    Transitions,
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


_HANGUP_LINES = (b"HANGUP\n", b"HANGUP\r\n")
_NAME_OF = re.compile(r"(agi_[a-z0-9_]+):").match
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
_FORMATS = {key: pattern for keys, pattern in (
    (("agi_callingpres", "agi_callingani2", "agi_callington", "agi_callingtns", "agi_priority",
      "agi_threadid"), r"-?[0-9]+"),
    (("agi_enhanced",), r"[0-9]\.[0-9]"),
) for key in keys}
"""Values Asterisk formats itself (``%d``, ``%ld``, ``"1.0"``): a copy that is not so
formatted is no run of Asterisk's lines."""
_ARG_NAMES = [f"agi_arg_{n}" for n in range(1, MAX_ENV_LINES + 1)]
_RUN_FORMS = [re.compile("\n".join(
    f"{key}: {_FORMATS.get(key, '.*')}" for key in run)
).fullmatch for run in _RUNS]
"""Per run, its lines as Asterisk writes them: ``agi_%s: %s``, numbers as numbers."""
_IN_RUN = {key: index for index, run in enumerate(_RUNS) for key in run}
_IN_ORDER = {short: (order, re.compile("\n".join(
    f"{key}: ({_FORMATS.get(key, '.*')})" if key in _IN_RUN else f"{key}: ?(.*)"
    for key in order)
).fullmatch) for short, order in (
    (False, list(SETUP_ENV_ORDER)),
    (True, [key for key in SETUP_ENV_ORDER if key != "agi_network_script"]))}
"""With and without agi_network_script: the names in order, and their lines with the
lines of every run as :data:`_RUN_FORMS` has them."""


def _in_order(lines: list[str]) -> dict[str, str] | None:
    """The variables when `lines` are Asterisk's, each name once and in its place, the
    runs as :data:`_RUN_FORMS` has them; None otherwise. With every name once there is
    only one cut, so this is what :meth:`_EnvReader._read` finds, without the search
    (tests/agi/test_environment_block.py checks that the two agree)."""
    if len(lines) < 2:
        return None
    order, form = _IN_ORDER[not lines[1].startswith("agi_network_script:")]
    size = len(order)
    match = form("\n".join(lines[:size]))
    if match is None:
        return None
    env = dict(zip(order, match.groups(), strict=True))
    for name, line in zip(_ARG_NAMES, lines[size:], strict=False):
        key, colon, value = line.partition(":")
        if key != name or not colon:
            return None
        env[name] = value[1:] if value[:1] == " " else value
    if len(lines) - size > len(_ARG_NAMES):
        return None
    return env


def _places(keys: list[str | None], name: str, start: int = 0) -> list[int]:
    """Where `name` stands in `keys`, from `start` on (C-speed scans, no loop per line)."""
    out: list[int] = []
    at = start - 1
    for _ in range(keys.count(name)):
        try:
            at = keys.index(name, at + 1)
        except ValueError:
            break
        out.append(at)
    return out


class _EnvReader:
    """Reads the environment block, as res_agi.c writes it.

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

    The lines come in batches (:meth:`feed`): a whole block in one batch, or one
    line at a time from a slow peer; either way each line is looked at once, in
    order, by the same loop, and a cut is tried at each blank line.
    """

    __slots__ = ("env", "extra", "keys", "lines", "notes", "pending", "values")

    def __init__(self) -> None:
        self.keys: list[str | None] = []
        """Per line kept: Asterisk's name it starts with, "" for text, None for the place
        of a variable Asterisk does not write (its name is then the line)."""
        self.lines: list[str] = []
        """Per line kept: the line as sent, without LF."""
        self.values: list[str] = []
        """Per line kept: its value (after the name, the colon and one space), or itself."""
        self.pending: list[str] = []
        """Lines after the first two, not read yet: they wait for a blank line."""
        self.extra: dict[str, list[str]] = {}
        """Variables Asterisk does not write, by name: their lines."""
        self.env: dict[str, str] = {}
        self.notes: list[str] = []
        """What was uncertain in the block (for the one WARNING)."""

    def feed(self, lines: list[str]) -> int | None:
        """Lines of the block without their LF: how many were used once the closing
        blank line is among them, None when every one was used and the block goes on.

        The first two lines are read at once (they tell an AGI peer from anything
        else). Later lines wait in :attr:`pending` until a blank line comes: then, if
        they are Asterisk's names once each and in order (:func:`_in_order`), that
        is the block; otherwise each is read by :meth:`_line`, which holds every rule,
        and the blank line is tried as the end."""
        n = len(lines)
        i = 0
        while i < n and len(self.keys) < 2:
            if self._read_line(lines[i]):
                return i + 1
            i += 1
        pending = self.pending
        while i < n:
            try:
                blank = lines.index("", i)
            except ValueError:
                pending.extend(lines[i:])
                return None
            pending.extend(lines[i:blank])
            i = blank + 1
            if len(self.keys) == 2 and not self.extra:  # nothing read line by line yet
                env = _in_order(self.lines + pending)
                if env is not None:
                    self._done(env, [])
                    return i
            self.pending = []
            for line in pending:
                self._read_line(line)
            pending = self.pending
            if self._read_line(""):
                return i
        return None

    def _read_line(self, line: str) -> bool:
        match = _NAME_OF(line)
        if match is None:
            return self._line(line, "", line)
        name = match.group(1)
        rest = line[len(name) + 1:]
        return self._line(line, name, rest[1:] if rest[:1] == " " else rest)

    def _line(self, line: str, name: str, rest: str) -> bool:
        """One line by the rules; True when it was the blank line that ends the block."""
        keys, kept, values, extra = self.keys, self.lines, self.values, self.extra
        if not line:
            if not keys:
                raise _EnvError("an empty environment block (a blank line before agi_network)")
            if len(keys) == 1:
                raise _EnvError("the environment block ends after agi_network, before "
                                "agi_threadid: not a whole Asterisk environment (Asterisk "
                                "writes agi_network_script or agi_request next)")
            if self._read():
                return True
            if keys[-1] is None:
                extra[kept[-1]].append("")
            else:
                keys.append("")
                kept.append("")
                values.append("")
            return False
        if not keys:
            if not name:
                raise _EnvError(f"not an agi_ environment line: {line[:80]!r}")
            if name != "agi_network":
                raise _EnvError(f"not a FastAGI environment: it starts with {name}, "
                                "not agi_network")
        else:
            if name and name not in _RANK and not _IS_ARG(name):
                if name not in extra:  # a name Asterisk does not write: a variable of its own
                    extra[name] = [rest]
                    keys.append(None)  # marks where its lines go
                    kept.append(name)
                    values.append("")
                    return False
                name, rest = "", line  # a second copy: text of the value before it
            if not name and keys[-1] is None:
                extra[kept[-1]].append(line)
                return False
        if len(keys) == 1 and name not in ("agi_network_script", "agi_request"):
            raise _EnvError(f"{line[:80]!r} after agi_network, which Asterisk writes as "
                            "one word, where agi_network_script or agi_request is due: not "
                            "an Asterisk environment block")
        keys.append(name)
        kept.append(line)
        values.append(rest if name else line)
        return False

    def _read(self) -> bool:
        """Cut the lines so far into a whole block; False when they are not one (yet)."""
        keys, lines, values = self.keys, self.lines, self.values
        if "agi_threadid" not in keys:
            return False
        if self.extra:  # the places of the variables Asterisk does not write are no lines
            kept = [c for c, key in enumerate(keys) if key is not None]
            keys = [keys[c] for c in kept]
            lines = [lines[c] for c in kept]
            values = [values[c] for c in kept]
        n = len(keys)

        def fits(index: int, p: int) -> bool:
            """Run `index` can stand at `p`: its lines as Asterisk writes them, then the next."""
            end = p + len(_RUNS[index])
            if end > n or not _RUN_FORMS[index]("\n".join(lines[p:end])):
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
            second = _places(keys, group[1], begin + 1)
            return second[0] + 1 if second else None

        if keys[1] == "agi_request":
            low: int | None = 2
        else:
            request = _places(keys, "agi_request", 2)
            low = request[0] + 1 if request else None
        if low is None:
            return False
        # Backwards: the places of each run that leave room for all the later ones.
        viable: list[list[int]] = [[] for _ in _RUNS]
        for index in range(len(_RUNS) - 1, -1, -1):
            later = max(viable[index + 1], default=-1) if index + 1 < len(_RUNS) else None
            viable[index] = [
                p for p in _places(keys, _RUNS[index][0], 2) if fits(index, p)
                and (later is None or ((r := room(index, p)) is not None and later >= r))]
        notes: list[str] = []
        chosen: list[int] = []
        for index, last_wins in enumerate(_LAST_WINS):
            places = [p for p in viable[index] if p >= low]  # type: ignore[operator]
            if not places:
                return False
            p = places[-1] if last_wins else places[0]
            run = _RUNS[index]
            if len(places) > 1 and len({tuple(values[q:q + len(run)]) for q in places}) > 1:
                notes.append(f"{run[0]} is written more than once (a caller value holds "
                             f"copies of Asterisk's lines): the {'last' if last_wins else 'first'}"
                             f" copy was taken as Asterisk's")
            chosen.append(p)
            if index < len(_GROUPS):
                low = room(index, p)
        self.notes = notes  # _values adds its own
        return self._done(self._values(keys, lines, values, chosen), self.notes)

    def _done(self, env: dict[str, str], notes: list[str]) -> bool:
        self.notes = notes
        self.env = env
        for key, extra_lines in self.extra.items():
            self.env.setdefault(key, "\n".join(extra_lines))
        return True

    def _values(self, keys: list[str | None], lines: list[str], values: list[str],
                chosen: list[int]) -> dict[str, str]:
        """The variables, once `chosen` says where each run of Asterisk's lines stands."""
        n = len(keys)
        starts: list[tuple[str, int]] = [("agi_network", 0)]
        if keys[1] == "agi_network_script":
            starts.append(("agi_network_script", 1))
            starts.append(("agi_request", self._request(keys, lines, values, chosen[0])))
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
                second = _places(keys[:chosen[index + 1]], group[1], begin + 1)
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
            elif _ARG_COPY(lines[c]):
                copied = True
        if copied:
            self.notes.append("an AGI argument holds a copy of an agi_arg_ line: the dialplan "
                              "passed text with a line break, and the arguments may be cut in "
                              "the wrong place")
        if len(starts) == n:  # one line each: each value is its line's
            env = dict(zip([key for key, _ in starts], values, strict=True))
        else:  # a value's first line, then its other lines as sent
            env = {key: values[at] if end == at + 1 else "\n".join([values[at], *lines[at + 1:end]])
                   for (key, at), (_, end) in zip(starts, [*starts[1:], ("", n)], strict=True)}
        for key in unknown:
            env[key] = "unknown"
        return env

    def _request(self, keys: list[str | None], lines: list[str], values: list[str],
                 stop: int) -> int:
        """Where agi_request begins when agi_network_script holds a copy of its line.

        Asterisk writes the URL, which ends in ``/`` and the script: the cut that
        keeps that true is the real one; when none or several do, the first.
        """
        cands = _places(keys[:stop], "agi_request", 2)
        if len(cands) == 1:
            return cands[0]
        kept = []
        for c in cands:
            script = "\n".join([values[1], *lines[2:c]])
            url = "\n".join([values[c], *lines[c + 1:stop]])
            if url.endswith("/" + script):
                kept.append(c)
        if len(kept) != 1:
            self.notes.append("agi_network_script holds a copy of the line agi_request: the "
                              "AGI URL in the dialplan carries text with a line break, and "
                              "the script name may be cut in the wrong place")
        return (kept or cands)[0]


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
"""An ``agi_`` line after the block: never allowed (see :class:`_EnvReader`)."""
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
        self.state = TRANSITIONS.initial
        self.environment: Environment | None = None
        self.hungup = False
        self._buf = bytearray()
        self._eof = False
        self._env_reader = _EnvReader()
        self._env_scan = 0
        """Where the next environment line starts in the buffer."""
        self._env_seen = 0
        """How far the buffer was searched for a line end, in vain."""
        self._env_lines = 0
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

    def _environment_block(self) -> EnvironmentReceived | None:
        """The ``agi_*`` block, once its closing blank line is in.

        Whatever complete lines arrived are handed to :class:`_EnvReader` in one
        batch (the whole block, nearly always), after the bounds of the lines they
        hold are checked; the reader resumes where it stopped, so a peer sending
        one byte at a time costs linear time.
        """
        buf = self._buf
        start = self._env_scan
        last = buf.rfind(b"\n", max(start, self._env_seen))
        if last < 0:
            self._env_seen = len(buf)
            self._check_env_tail(start)
            return None
        raw = bytes(buf[start:last])
        # A batch no longer than a line holds no line too long; one ending the block (as
        # nearly every batch does) is consumed whole: only then are its lines measured.
        raw_lines = raw.split(b"\n") if len(raw) > self.max_line else None
        text = raw.decode("utf-8", "replace")
        lines = text.split("\n")
        # Bounds, line by line in order: the first line past one ends the batch, and is
        # an error unless the block ends before it.
        stop: int | None = None
        why = ""
        room = self.max_env_lines - self._env_lines
        if len(lines) > room:
            stop, why = room, f"an environment block longer than {self.max_env_lines} lines"
        if raw_lines is not None and max(map(len, raw_lines)) > self.max_line:
            long = next(c for c, line in enumerate(raw_lines) if len(line) > self.max_line)
            if stop is None or long <= stop:
                stop, why = long, f"a line longer than {self.max_line} bytes"
        if last + 1 > MAX_ENV_BYTES:
            end = start
            for c, line in enumerate(raw.split(b"\n")):
                end += len(line) + 1
                if end > MAX_ENV_BYTES:
                    if stop is None or c < stop:
                        stop, why = c, f"an environment block longer than {MAX_ENV_BYTES} bytes"
                    break
        if stop is not None:
            lines = lines[:stop]
        reader = self._env_reader
        try:
            used = reader.feed(lines) if lines else None
        except _EnvError as exc:
            self._fail(str(exc))
        if used is None:
            if stop is not None:
                self._fail(why)
            self._env_scan = last + 1
            self._env_seen = len(buf)
            self._env_lines += len(lines)
            self._check_env_tail(last + 1)
            return None
        if used == len(lines) and stop is None:
            del buf[: last + 1]
        else:
            del buf[: start + sum(map(len, raw.split(b"\n")[:used])) + used]
        if reader.notes:
            log.warning(
                "AGI environment of channel %s: %s. The call is routed; the caller "
                "data it names is not trusted. Nothing to do unless this repeats: "
                "then look at who calls (the caller ID and the SIP From header).",
                display_text(reader.env.get("agi_channel"), 120),
                "; ".join(reader.notes))
        self.environment = build_environment(reader.env)
        self.state = TRANSITIONS.step(self.state, ENVIRONMENT_BLOCK)
        return EnvironmentReceived(self.environment)

    def _check_env_tail(self, start: int) -> None:
        """Bounds of the unfinished line at `start`, and of the block so far."""
        if len(self._buf) - start > self.max_line:
            self._fail(f"a line longer than {self.max_line} bytes")
        if len(self._buf) > MAX_ENV_BYTES:
            self._fail(f"an environment block longer than {MAX_ENV_BYTES} bytes")

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
