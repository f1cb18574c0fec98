"""Reading the ``agi_*`` block that opens a FastAGI connection: where it ends, how
big it may be, and which of its lines is which variable.

The block is the one input of FastAGI that is not one line per event: a caller's
line breaks inside a value spread one variable over several lines, so the block is
read as a whole (see :class:`EnvironmentBlockReader`), by one reader whether it
came in one read or one byte at a time. The connection machine (agi/protocol.py)
only asks for it; the typed record handlers read is agi/environment.py, which
knows nothing of the wire.
"""

from __future__ import annotations

import re

MAX_ENV_LINES = 256
"""About 25 fixed variables plus at most 128 arguments."""
MAX_ENV_BYTES = 65536
"""The whole environment block (Asterisk's own AGI argument buffer is far smaller)."""

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


class EnvironmentBlockError(Exception):
    """The block is not one Asterisk writes, or breaks a bound; the connection turns it
    into a RemoteProtocolError with the same words."""


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
    only one cut, so this is what :meth:`EnvironmentBlockReader._read` finds, without the search
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


class EnvironmentBlockReader:
    """Reads the environment block, as res_agi.c writes it, out of a connection's buffer.

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
    connection refuses it (see :meth:`mailcall.agi.protocol.Connection._line`):
    Asterisk writes the whole block before it reads a command, so it comes
    before any reply; the server starts no handler before the read that
    brought the block is consumed, and every handler's first command,
    ``SET VARIABLE CHANNEL(language)``, acts on nothing.

    :meth:`read` hands whatever complete lines arrived to :meth:`feed` in one
    batch (the whole block, nearly always), after the bounds of the lines they
    hold are checked: a whole block in one batch, or one line at a time from a
    slow peer; either way each line is looked at once, in order, by the same
    loop, and a cut is tried at each blank line, so a peer sending one byte at a
    time costs linear time.
    """

    __slots__ = ("_line_count", "_scan", "_seen", "env", "extra", "keys", "lines", "notes",
                 "pending", "values")

    def __init__(self) -> None:
        self._scan = 0
        """Where the next environment line starts in the buffer."""
        self._seen = 0
        """How far the buffer was searched for a line end, in vain."""
        self._line_count = 0
        """Lines of the block handed to :meth:`feed` so far."""
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

    def read(self, buf: bytearray, max_line: int, max_env_lines: int) -> dict[str, str] | None:
        """The variables once the block's closing blank line is in `buf`, None before.

        The block's bytes are removed from `buf` once it is complete (what follows
        stays); until then they stay where they are. Raises
        :class:`EnvironmentBlockError` on a line longer than `max_line` bytes, more
        than `max_env_lines` lines or :data:`MAX_ENV_BYTES` bytes, or a line that
        cannot be Asterisk's.
        """
        start = self._scan
        last = buf.rfind(b"\n", max(start, self._seen))
        if last < 0:
            self._seen = len(buf)
            _check_tail(buf, start, max_line)
            return None
        raw = bytes(buf[start:last])
        # A batch no longer than a line holds no line too long; one ending the block (as
        # nearly every batch does) is consumed whole: only then are its lines measured.
        raw_lines = raw.split(b"\n") if len(raw) > max_line else None
        text = raw.decode("utf-8", "replace")
        lines = text.split("\n")
        # Bounds, line by line in order: the first line past one ends the batch, and is
        # an error unless the block ends before it.
        stop: int | None = None
        why = ""
        room = max_env_lines - self._line_count
        if len(lines) > room:
            stop, why = room, f"an environment block longer than {max_env_lines} lines"
        if raw_lines is not None and max(map(len, raw_lines)) > max_line:
            long = next(c for c, line in enumerate(raw_lines) if len(line) > max_line)
            if stop is None or long <= stop:
                stop, why = long, f"a line longer than {max_line} bytes"
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
        used = self.feed(lines) if lines else None
        if used is None:
            if stop is not None:
                raise EnvironmentBlockError(why)
            self._scan = last + 1
            self._seen = len(buf)
            self._line_count += len(lines)
            _check_tail(buf, last + 1, max_line)
            return None
        if used == len(lines) and stop is None:
            del buf[: last + 1]
        else:
            del buf[: start + sum(map(len, raw.split(b"\n")[:used])) + used]
        return self.env

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
                raise EnvironmentBlockError(
                    "an empty environment block (a blank line before agi_network)")
            if len(keys) == 1:
                raise EnvironmentBlockError(
                    "the environment block ends after agi_network, before agi_threadid: not "
                    "a whole Asterisk environment (Asterisk writes agi_network_script or "
                    "agi_request next)")
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
                raise EnvironmentBlockError(f"not an agi_ environment line: {line[:80]!r}")
            if name != "agi_network":
                raise EnvironmentBlockError(f"not a FastAGI environment: it starts with "
                                            f"{name}, not agi_network")
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
            raise EnvironmentBlockError(
                f"{line[:80]!r} after agi_network, which Asterisk writes as one word, where "
                "agi_network_script or agi_request is due: not an Asterisk environment block")
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


def _check_tail(buf: bytearray, start: int, max_line: int) -> None:
    """Bounds of the unfinished line at `start`, and of the block so far."""
    if len(buf) - start > max_line:
        raise EnvironmentBlockError(f"a line longer than {max_line} bytes")
    if len(buf) > MAX_ENV_BYTES:
        raise EnvironmentBlockError(f"an environment block longer than {MAX_ENV_BYTES} bytes")
