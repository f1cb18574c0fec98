"""What every sans-I/O protocol machine of mailcall shares: one sentinel, one error family.

FastAGI (agi/protocol.py), AMI (ami/protocol.py), Dovecot's script socket
(sieve/script_protocol.py), ManageSieve (sieve/managesieve_protocol.py) and
SMTP/LMTP (deposit/mail_protocol.py) are machines fed bytes, h11-style:
``next_event()`` answers :data:`NEED_DATA` when a complete event is not there
yet. Each machine writes what its protocol allows in one :class:`Transitions`
table. The other parsers without I/O raise from the same family: IMAP responses
(imap/protocol.py) and the frames between ``mailcall serve`` and its delivery
process (deposit/pipe_protocol.py).

The one naming rule for errors: the peer's fault (bytes its protocol does not
allow, or more than our bounds) is a :class:`RemoteProtocolError`; our own misuse
(a command before the answer, an argument that would inject a command) is a
:class:`LocalProtocolError`. A machine raises these two itself, with its
protocol named in the message where the caller could not tell, and defines no
alias or error of its own, so ``except RemoteProtocolError`` means the same for
every machine and ``except ProtocolError`` ends one connection, never the server.
Only where callers already tell a machine's errors apart by name does one keep a
class, and it derives from one of the two (``agi.commands.CommandError``, a
LocalProtocolError; the pipe's ``PipeRemoteError`` and ``PipeLocalError``).
tests/core/test_sansio.py checks every machine module against this rule.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Generic, TypeVar


class ProtocolError(Exception):
    """A protocol was broken; the message says by whom and how."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something its protocol does not allow, or more than our bounds."""


class LocalProtocolError(ProtocolError):
    """This side tried something the protocol does not allow (pipelining, injection)."""


class NeedData:
    """The type of :data:`NEED_DATA`; there is only ever the one instance."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()
"""Returned by ``next_event()`` when more bytes must arrive first."""


class ByteReceiver:
    """``receive_data`` as every byte-fed machine has it: the bytes are appended to the
    machine's own ``_buf`` (copied before this returns, so a caller may hand a view of a
    buffer it reuses, as the FastAGI server does), and ``b""`` marks end of file."""

    __slots__ = ()
    _buf: bytearray
    _eof: bool

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed."""
        if data:
            if self._eof:
                raise RuntimeError("data received after end of file")
            self._buf += data
        else:
            self._eof = True


S = TypeVar("S", bound=enum.Enum)


class Transitions(Generic[S]):
    """Every transition of one machine, written in one table (as h11's ``_state.py``).

    ``table`` maps (state, input) to the next state. An input is a short name for
    what happened: something the peer sent (``"reply"``, ``"eof"``...) or something
    this side asked for (``"send"``, listed in ``ours``). The machine classifies
    what arrived, then asks :meth:`step`; a pair missing from the table is refused
    with :class:`LocalProtocolError` for our own inputs (the caller misused the
    machine) or :class:`RemoteProtocolError` for the peer's. So what a protocol
    allows is read in one place, and tests can check the table itself (every
    state reachable, none a dead end). ``error`` is where any refusal of the
    peer leads; it is outside the table because every state leads there.
    """

    __slots__ = ("error", "initial", "machine", "ours", "table", "terminal")

    def __init__(
        self,
        machine: str,
        *,
        initial: S,
        error: S,
        terminal: Iterable[S],
        ours: Iterable[str],
        table: Mapping[tuple[S, str], S],
    ) -> None:
        self.machine = machine
        self.initial = initial
        self.error = error
        self.terminal = frozenset(terminal)
        self.ours = frozenset(ours)
        self.table = dict(table)

    def step(self, state: S, what: str, explain: Callable[[], str | None] | None = None) -> S:
        """The state after `what` in `state`; else raises the error :meth:`refusal` gives,
        worded by `explain` (called only then; None keeps the table's words)."""
        nxt = self.table.get((state, what))
        if nxt is None:
            raise self.refusal(state, what, explain() if explain is not None else None)
        return nxt

    def allows(self, state: S, what: str) -> bool:
        return (state, what) in self.table

    def refusal(self, state: S, what: str, message: str | None = None) -> ProtocolError:
        """The error for `what` in `state` (not checked against the table)."""
        if message is None:
            message = f"{self.machine}: {what} is not allowed in state {state.value}"
        if what in self.ours:
            return LocalProtocolError(message)
        return RemoteProtocolError(message)

    @property
    def states(self) -> frozenset[S]:
        """Every state the table names, the initial one included."""
        return frozenset({self.initial} | {s for s, _ in self.table}
                         | set(self.table.values()))

    @property
    def inputs(self) -> frozenset[str]:
        return frozenset(what for _, what in self.table)

    def reachable(self) -> frozenset[S]:
        """The states the table leads to from the initial one."""
        seen = {self.initial}
        todo = [self.initial]
        while todo:
            state = todo.pop()
            for (src, _), dst in self.table.items():
                if src is state and dst not in seen:
                    seen.add(dst)
                    todo.append(dst)
        return frozenset(seen)
