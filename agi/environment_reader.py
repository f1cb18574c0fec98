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

from mailcall.core.sansio import RemoteProtocolError

from .environment_cut import cut, values_at
from .environment_layout import IS_ARG, NAME_OF, RANK, in_order

MAX_ENV_BYTES = 65536
"""The whole environment block (Asterisk's own AGI argument buffer is far smaller)."""


class EnvironmentBlockReader:
    """Reads the environment block, as res_agi.c writes it, out of a connection's buffer.

    ``setup_env`` writes ``agi_NAME: value\\n`` with the raw value, so a value
    holding CR or LF (PJSIP decodes ``%0d%0a`` in a SIP From user) spreads over
    several lines: ``agi_callerid: \\r`` then ``Bcc: x@evil``, a blank line, or
    a copy of one of Asterisk's own lines (``1\\nagi_context: x``). The order of
    the names never changes, and most values are Asterisk's own, one line each
    (:data:`RUNS`); only the values between those runs can hold a caller's
    text. So the block is read as whole: every way of cutting it into
    :data:`SETUP_ENV_ORDER` that keeps each run of Asterisk's lines together is
    a candidate, and

    * a copy of a name out of its place is the text of the value it is in;
    * when a run of Asterisk's lines appears more than once, the copy on the
      side the caller cannot write wins (:data:`LAST_WINS`), so nothing a
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
    whole run and the name after it, from the side :data:`LAST_WINS` trusts:
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
        :class:`~mailcall.core.sansio.RemoteProtocolError` on a line longer than
        `max_line` bytes, more than `max_env_lines` lines or :data:`MAX_ENV_BYTES`
        bytes, or a line that cannot be Asterisk's.
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
                raise RemoteProtocolError(why)
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
        they are Asterisk's names once each and in order (:func:`in_order`), that
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
                env = in_order(self.lines + pending)
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
        match = NAME_OF(line)
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
                raise RemoteProtocolError(
                    "an empty environment block (a blank line before agi_network)")
            if len(keys) == 1:
                raise RemoteProtocolError(
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
                raise RemoteProtocolError(f"not an agi_ environment line: {line[:80]!r}")
            if name != "agi_network":
                raise RemoteProtocolError(f"not a FastAGI environment: it starts with "
                                            f"{name}, not agi_network")
        else:
            if name and name not in RANK and not IS_ARG(name):
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
            raise RemoteProtocolError(
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
        found = cut(keys, lines, values)
        if found is None:
            return False
        chosen, notes = found
        self.notes = notes  # values_at adds its own
        return self._done(values_at(keys, lines, values, chosen, self.notes), self.notes)

    def _done(self, env: dict[str, str], notes: list[str]) -> bool:
        self.notes = notes
        self.env = env
        for key, extra_lines in self.extra.items():
            self.env.setdefault(key, "\n".join(extra_lines))
        return True


def _check_tail(buf: bytearray, start: int, max_line: int) -> None:
    """Bounds of the unfinished line at `start`, and of the block so far."""
    if len(buf) - start > max_line:
        raise RemoteProtocolError(f"a line longer than {max_line} bytes")
    if len(buf) > MAX_ENV_BYTES:
        raise RemoteProtocolError(f"an environment block longer than {MAX_ENV_BYTES} bytes")
