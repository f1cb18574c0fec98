"""Asterisk Manager Interface without I/O: a client connection fed bytes, emitting events.

Same convention as :mod:`mailcall.agi.protocol` (h11 style): push what
arrived with :meth:`Connection.receive_data` (``b""`` for end of file), pull
:meth:`Connection.next_event` until it returns :data:`NEED_DATA`, and ask
:meth:`Connection.send_action` for the bytes of an action. No socket, no
clock: :mod:`mailcall.ami.client` owns those, tests drive this byte by byte.

What the wire looks like (main/manager.c, res/res_mwi_external_ami.c and the
recordings in tests/ami/traces):

* Asterisk opens with one line, ``Asterisk Call Manager/13.0.0``;
* then messages of ``Key: Value`` lines ended by a blank line, CR LF
  everywhere. A message with ``Response:`` answers the action whose
  ``ActionID`` it carries; one with ``Event:`` is an event;
* an action that lists things (``MWIGet``, ``CoreShowChannels``) answers
  ``Response: Success`` with ``EventList: start``, then events carrying its
  ActionID, then an event with ``EventList: Complete``. This machine gathers
  them and emits one :class:`~mailcall.ami.messages.Response` holding the listed events, so the
  client matches every action to exactly one answer.

What is sent is checked against Asterisk's own reader by
:mod:`mailcall.ami.actions`; the messages emitted are typed in
:mod:`mailcall.ami.messages`.

Every input is bounded: line length, message size, fields per message,
events per list, bytes held by unfinished lists, actions in flight. Anything
else is a :class:`RemoteProtocolError` and the connection is over.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping

from mailcall.core.sansio import (
    NEED_DATA,
    ByteReceiver,
    LocalProtocolError,
    NeedData,
    RemoteProtocolError,
    Transitions,
)

from .actions import NAME_OK, encode_action
from .messages import AmiEvent, Banner, ConnectionClosed, Event, Message, Response

MAX_LINE = 65536
"""Longest line accepted from Asterisk (its events are a few hundred bytes)."""
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""One message, e.g. ``Command`` output of a long CLI listing, one ``Output:`` per line."""
MAX_FIELDS = 2048
"""Lines in one message. Parsed in one go on the event loop that also serves calls:
2048 lines cost about 20 ms, a hostile 16,384 about 160 ms (docs/mwi.md)."""
MAX_LIST_EVENTS = 250_000
"""Events in one list answer: MWIGet of every mailbox of a large site."""
MAX_LIST_BYTES = 64 * 1024 * 1024
"""Bytes held by all unfinished list answers together."""
MAX_PENDING = 1024
"""Actions sent and not answered yet."""

BANNER_PREFIX = "Asterisk Call Manager/"


class State(enum.Enum):
    __hash__ = object.__hash__  # members are singletons: the table lookups skip Enum's hash
    BANNER = "banner"
    OPEN = "open"
    CLOSED = "closed"
    ERROR = "error"


# The inputs: what Asterisk sent, or (ACTION) what the client sends.
BANNER_LINE = "banner"
NOT_A_BANNER = "not-a-banner"
RESPONSE = "response"
LIST_START = "list-start"
"""``Response: Success`` with ``EventList: start``: events listed for the action follow."""
LIST_ITEM = "list-item"
LIST_COMPLETE = "list-complete"
EVENT = "event"
NEITHER = "neither-response-nor-event"
EOF_INPUT = "eof"
ACTION = "action"

TRANSITIONS: Transitions[State] = Transitions(
    "AMI",
    initial=State.BANNER,
    error=State.ERROR,
    terminal=(State.CLOSED,),
    ours=(ACTION,),
    table={
        (State.BANNER, BANNER_LINE): State.OPEN,
        (State.OPEN, ACTION): State.OPEN,
        (State.OPEN, RESPONSE): State.OPEN,
        (State.OPEN, LIST_START): State.OPEN,
        (State.OPEN, LIST_ITEM): State.OPEN,
        (State.OPEN, LIST_COMPLETE): State.OPEN,
        (State.OPEN, EVENT): State.OPEN,
        (State.OPEN, EOF_INPUT): State.CLOSED,
    },
)
"""Every transition of an AMI connection: the banner line, then any number of actions
and messages, answers and events interleaved as Asterisk pleases, until end of file.
Which answer belongs to which action is matched by ActionID (``_pending``), not by
state: AMI answers out of order. Logging in is an action like the others; the client
(:mod:`mailcall.ami.client`) holds every other action back until Login succeeded."""




class _Pending:
    __slots__ = ("abandoned", "action", "list_bytes", "listed", "response")

    def __init__(self, action: str) -> None:
        self.action = action
        self.response: Message | None = None
        self.listed: list[Message] | None = None
        self.list_bytes = 0
        self.abandoned = False


class Connection(ByteReceiver):
    """One AMI connection, seen from the client (fed by ``receive_data``)."""

    __slots__ = (
        "_buf",
        "_eof",
        "_error",
        "_line_start",
        "_list_bytes",
        "_next_id",
        "_pending",
        "_scan",
        "action_prefix",
        "max_line",
        "max_list_events",
        "max_message_bytes",
        "max_pending",
        "state",
        "unmatched",
        "version",
    )

    def __init__(
        self,
        *,
        action_prefix: str = "mailcall",
        max_line: int = MAX_LINE,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
        max_list_events: int = MAX_LIST_EVENTS,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if not NAME_OK(action_prefix):
            raise LocalProtocolError(f"action_prefix {action_prefix!r}: letters, digits, - and _ "
                                     "only")
        self.action_prefix = action_prefix
        self.max_line = max_line
        self.max_message_bytes = max_message_bytes
        self.max_list_events = max_list_events
        self.max_pending = max_pending
        self.state = State.BANNER
        self.version: str | None = None
        self.unmatched = 0
        """Answers that matched no action in flight (late, or invented by the peer): dropped."""
        self._buf = bytearray()
        self._scan = 0
        self._line_start = 0
        self._eof = False
        self._error: str | None = None
        self._next_id = 0
        self._pending: dict[str, _Pending] = {}
        self._list_bytes = 0

    @property
    def buffered(self) -> int:
        """Bytes received and not turned into events yet (plus unfinished lists)."""
        return len(self._buf) + self._list_bytes

    @property
    def pending(self) -> tuple[str, ...]:
        """ActionIDs sent and not answered yet."""
        return tuple(k for k, p in self._pending.items() if not p.abandoned)

    # ------------------------------------------------------------------ input

    def next_event(self) -> AmiEvent | NeedData:
        """The next event, or NEED_DATA; raises RemoteProtocolError on bad or excessive input."""
        if self.state is State.ERROR:
            raise RemoteProtocolError(self._error or "connection already failed")
        if self.state is State.CLOSED:
            return NEED_DATA
        try:
            while True:
                if self.state is State.BANNER:
                    event = self._banner()
                else:
                    event = self._message()
                if event is NEED_DATA:
                    return self._at_eof() if self._eof else NEED_DATA
                if event is not None:
                    return event
        except RemoteProtocolError as exc:
            self._error = self._error or str(exc)
            self.state = State.ERROR
            self._buf = bytearray()  # a failed connection holds no memory
            self._pending.clear()
            self._list_bytes = 0
            raise

    def _fail(self, message: str) -> None:
        self._error = message
        raise RemoteProtocolError(message)

    def _at_eof(self) -> AmiEvent | NeedData:
        if self._buf.strip():
            self._fail("connection closed in the middle of a message")
        self.state = TRANSITIONS.step(self.state, EOF_INPUT, lambda: (
            "connection closed before the Asterisk Call Manager banner"))
        pending = self.pending
        self._pending.clear()
        self._list_bytes = 0
        return ConnectionClosed(pending)

    def _banner(self) -> Banner | NeedData:
        buf = self._buf
        end = buf.find(b"\n")
        if end < 0:
            if len(buf) > self.max_line:
                self._fail(f"no banner line within {self.max_line} bytes")
            if len(buf) >= len(BANNER_PREFIX) and not buf.startswith(BANNER_PREFIX.encode()):
                self._fail(f"not an Asterisk AMI banner: {_show(buf)}")
            return NEED_DATA
        line = bytes(buf[:end]).rstrip(b"\r").decode("utf-8", "replace")
        del buf[: end + 1]
        kind = BANNER_LINE if line.startswith(BANNER_PREFIX) else NOT_A_BANNER
        self.state = TRANSITIONS.step(self.state, kind, lambda: (
            f"not an Asterisk AMI banner: {line[:80]!r}"))
        self.version = line[len(BANNER_PREFIX):].strip()
        return Banner(self.version)

    def _message(self) -> AmiEvent | NeedData | None:
        """One whole message when its blank line is in; None when it was absorbed."""
        buf = self._buf
        # Skip blank lines between messages (Asterisk never sends them; be lenient).
        while buf[:1] in (b"\n", b"\r"):
            if buf[:2] == b"\r\n":
                del buf[:2]
            elif buf[:1] == b"\n":
                del buf[:1]
            elif len(buf) == 1:
                return NEED_DATA
            else:
                self._fail(f"a bare CR in a message: {_show(buf)}")
        start = max(self._scan - 2, 0)
        a = buf.find(b"\n\r\n", start)
        b = buf.find(b"\n\n", start)
        if a < 0 and b < 0:
            self._check_partial(start)
            return NEED_DATA
        if a < 0 or (0 <= b < a):
            end, skip = b + 1, 1
        else:
            end, skip = a + 1, 2
        if end > self.max_message_bytes:
            self._fail(f"a message longer than {self.max_message_bytes} bytes")
        block = bytes(buf[:end])
        del buf[: end + skip]
        self._scan = self._line_start = 0
        return self._dispatch(self._parse(block))

    def _check_partial(self, start: int) -> None:
        """Bounds of an unfinished message, in time linear in the bytes that arrived."""
        buf = self._buf
        if len(buf) > self.max_message_bytes:
            self._fail(f"a message longer than {self.max_message_bytes} bytes")
        last = buf.rfind(b"\n", start)
        if last >= 0:
            self._line_start = last + 1
        if len(buf) - self._line_start > self.max_line:
            self._fail(f"a line longer than {self.max_line} bytes")
        self._scan = len(buf)

    def _parse(self, block: bytes) -> Message:
        text = block.decode("utf-8", "replace")
        lines = text.split("\n")[:-1]
        if len(lines) > MAX_FIELDS:
            self._fail(f"a message with more than {MAX_FIELDS} lines")
        fields = []
        for line in lines:
            if line.endswith("\r"):
                line = line[:-1]
            if len(line) > self.max_line:
                self._fail(f"a line longer than {self.max_line} bytes")
            key, sep, value = line.partition(":")
            if not sep or not key or not NAME_OK(key):
                self._fail(f"not an AMI 'Key: Value' line: {line[:80]!r}")
            fields.append((key, value[1:] if value[:1] == " " else value))
        return Message(tuple(fields))

    def _dispatch(self, msg: Message) -> AmiEvent | None:
        """Every message after the banner: which input it is, where the table leads."""
        first_key = msg.fields[0][0].lower()
        # Asterisk always writes Response or Event first; look further, but insist on one.
        if first_key == "response" or (first_key != "event" and msg.get("Response") is not None):
            kind, pending = self._response_kind(msg)
        elif first_key == "event" or msg.get("Event") is not None:
            kind, pending = self._event_kind(msg)
        else:
            kind, pending = NEITHER, None
        self.state = TRANSITIONS.step(self.state, kind, lambda: (
            f"a message with neither Response nor Event: {msg.to_dict()!r:.120}"
            if kind == NEITHER else None))
        if kind == RESPONSE:
            return self._response(msg, pending)
        if kind == LIST_START:
            assert pending is not None
            pending.response = msg
            pending.listed = []
            return None
        if kind == LIST_ITEM:
            assert pending is not None
            self._list_item(pending, msg)
            return None
        if kind == LIST_COMPLETE:
            return self._list_done(msg.get("ActionID") or "", pending, msg)  # type: ignore[arg-type]
        return Event(msg.get("Event") or "", msg)

    def _response_kind(self, msg: Message) -> tuple[str, _Pending | None]:
        pending = self._pending.get(msg.get("ActionID") or "")
        if pending is None or pending.response is not None:
            return RESPONSE, None  # answers no action in flight: dropped, counted
        status = msg.get("Response") or ""
        if (msg.get("EventList") or "").lower() == "start" and status.lower() == "success":
            return LIST_START, pending
        return RESPONSE, pending

    def _event_kind(self, msg: Message) -> tuple[str, _Pending | None]:
        action_id = msg.get("ActionID")
        if action_id is not None:
            pending = self._pending.get(action_id)
            if pending is not None and pending.listed is not None:
                if (msg.get("EventList") or "").lower() == "complete":
                    return LIST_COMPLETE, pending
                return LIST_ITEM, pending
        return EVENT, None

    def _response(self, msg: Message, pending: _Pending | None) -> Response | None:
        if pending is None:
            self.unmatched += 1
            return None
        action_id = msg.get("ActionID") or ""
        del self._pending[action_id]
        if pending.abandoned:
            return None
        return Response(action_id, pending.action, msg.get("Response") or "", msg)

    def _list_item(self, pending: _Pending, msg: Message) -> None:
        assert pending.listed is not None
        size = sum(len(k) + len(v) + 4 for k, v in msg.fields)
        pending.list_bytes += size
        self._list_bytes += size
        if len(pending.listed) >= self.max_list_events:
            self._fail(f"a list answer to {pending.action} longer than "
                       f"{self.max_list_events} events")
        if self._list_bytes > MAX_LIST_BYTES:
            self._fail(f"list answers holding more than {MAX_LIST_BYTES} bytes")
        if not pending.abandoned:
            pending.listed.append(msg)

    def _list_done(self, action_id: str, pending: _Pending, complete: Message) -> Response | None:
        del self._pending[action_id]
        self._list_bytes -= pending.list_bytes
        if pending.abandoned:
            return None
        assert pending.response is not None and pending.listed is not None
        listed = (*pending.listed, complete)
        return Response(action_id, pending.action, pending.response.get("Response") or "",
                        pending.response, listed)

    # ----------------------------------------------------------------- output

    def send_action(self, action: str,
                    fields: Mapping[str, object] | Iterable[tuple[str, object]] = ()
                    ) -> tuple[str, bytes]:
        """(ActionID, bytes) for `action`; refuses what Asterisk would misread."""
        state = self.state
        nxt = TRANSITIONS.step(state, ACTION, lambda: (
            f"cannot send an action in state {state.value}"))
        if len(self.pending) >= self.max_pending:
            raise LocalProtocolError(f"{self.max_pending} actions already wait for an answer")
        self._next_id += 1
        action_id = f"{self.action_prefix}-{self._next_id}"
        data = encode_action(action, fields, action_id)
        self._pending[action_id] = _Pending(action)
        self.state = nxt
        return action_id, data

    def abandon(self, action_id: str) -> None:
        """Stop waiting for `action_id` (it timed out): its answer, if any, is dropped."""
        pending = self._pending.get(action_id)
        if pending is not None:
            pending.abandoned = True
            if pending.listed is not None:
                self._list_bytes -= pending.list_bytes
                pending.list_bytes = 0
                pending.listed.clear()


def _show(buf: bytes | bytearray) -> str:
    return repr(bytes(buf[:80]))
