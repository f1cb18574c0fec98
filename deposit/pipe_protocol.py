"""The messages between ``mailcall serve`` and its delivery process, sans I/O.

The worker runs in a child process (:mod:`~mailcall.deposit.delivery_process`)
but the policy and the plugins stay in ``mailcall serve``, so the two talk
over a pipe: the child asks for each deposit's plan and tells of each
delivery; the parent wakes it, asks it to drain or stop. Every message is a
frozen dataclass below; :func:`encode` and :func:`decode` are the one place
where they become bytes and back (JSON, each field checked against its type),
and :class:`PipeEnd` refuses a message that its side may not send or receive.
A frame that is not one of these messages is a :class:`PipeProtocolError`
naming what is wrong; no frame can run code (JSON, not pickle) or leave a
half-read message behind. Framing is the transport's (``Connection.send_bytes``).

Who sends what (:data:`MESSAGES`)::

    message           sent by    answers / answered by
    ready             delivery   the start: its worker runs
    start-failed      delivery   the start: the worker could not start (reason)
    wake              serve      a deposit was accepted; at most one in flight
    awake             delivery   wake
    plan-request      delivery   each attempt: plan-given | plan-refused | plan-retry-later
    plan-given        serve      plan-request (plan, origin, delivery target)
    plan-refused      serve      plan-request: the policy has no plan (the deposit is parked)
    plan-retry-later  serve      plan-request: no answer now (the deposit is deferred)
    deposit-delivered delivery   a 250 was recorded (the mobile notification is the parent's)
    drain             serve      drained, once nothing is due or under way (tests, bench)
    drained           delivery   drain (None, or why it did not drain)
    stop              serve      stopped, after deliveries under way (grace in seconds)
    stopped           delivery   stop
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Any

from mailcall.core.decisions.deposits import Deposit
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.sansio import LocalProtocolError, ProtocolError, RemoteProtocolError

from .delivery import Target
from .typed_json import InvalidValue, from_json, to_json
from .voice_message import Origin

MAX_FRAME = 1 << 20
"""Bytes in one message; a plan or a deposit takes a few KiB."""


class PipeProtocolError(ProtocolError):
    """A frame that is not a message this side may send or receive; the text says what is
    wrong. One of :mod:`mailcall.core.sansio`'s family, split by whose fault it is below."""


class PipeRemoteError(PipeProtocolError, RemoteProtocolError):
    """What the other process sent is not a message this side may receive."""


class PipeLocalError(PipeProtocolError, LocalProtocolError):
    """This side tried to send something that is not a message it may send."""


class Side(enum.Enum):
    SERVE = "mailcall serve"
    DELIVERY = "the delivery process"


# ---------------------------------------------------------------- from the delivery process


@dataclass(frozen=True, slots=True)
class Ready:
    pass


@dataclass(frozen=True, slots=True)
class StartFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Awake:
    pass


@dataclass(frozen=True, slots=True)
class PlanRequest:
    number: int
    deposit: Deposit


@dataclass(frozen=True, slots=True)
class DepositDelivered:
    deposit: Deposit
    plan: DepositPlan
    message_id: str


@dataclass(frozen=True, slots=True)
class Drained:
    number: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Stopped:
    pass


# ---------------------------------------------------------------------- from mailcall serve


@dataclass(frozen=True, slots=True)
class Wake:
    pass


@dataclass(frozen=True, slots=True)
class PlanGiven:
    number: int
    plan: DepositPlan
    origin: Origin
    target: Target


@dataclass(frozen=True, slots=True)
class PlanRefused:
    number: int
    reason: str


@dataclass(frozen=True, slots=True)
class PlanRetryLater:
    number: int
    reason: str


@dataclass(frozen=True, slots=True)
class Drain:
    number: int
    timeout: float


@dataclass(frozen=True, slots=True)
class Stop:
    grace: float


Message = (Ready | StartFailed | Awake | PlanRequest | DepositDelivered | Drained | Stopped
           | Wake | PlanGiven | PlanRefused | PlanRetryLater | Drain | Stop)

MESSAGES: tuple[tuple[str, type, Side], ...] = (
    ("ready", Ready, Side.DELIVERY),
    ("start-failed", StartFailed, Side.DELIVERY),
    ("awake", Awake, Side.DELIVERY),
    ("plan-request", PlanRequest, Side.DELIVERY),
    ("deposit-delivered", DepositDelivered, Side.DELIVERY),
    ("drained", Drained, Side.DELIVERY),
    ("stopped", Stopped, Side.DELIVERY),
    ("wake", Wake, Side.SERVE),
    ("plan-given", PlanGiven, Side.SERVE),
    ("plan-refused", PlanRefused, Side.SERVE),
    ("plan-retry-later", PlanRetryLater, Side.SERVE),
    ("drain", Drain, Side.SERVE),
    ("stop", Stop, Side.SERVE),
)
"""Wire name, class and the one side that sends it."""

_TYPE = {cls: name for name, cls, _ in MESSAGES}
_CLASS = {name: cls for name, cls, _ in MESSAGES}
_SENDER = {cls: side for _, cls, side in MESSAGES}


def encode(message: Message) -> bytes:
    """The frame for `message`."""
    name = _TYPE.get(type(message))
    if name is None:
        raise PipeLocalError(f"{type(message).__name__} is not a pipe message")
    try:
        body = {"type": name, **to_json(message)}
    except InvalidValue as exc:
        raise PipeLocalError(f"cannot encode a {name} message: {exc}") from None
    return json.dumps(body, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode()


def decode(frame: bytes) -> Message:
    """The message in `frame`, or :class:`PipeProtocolError` saying what is wrong with it."""
    if len(frame) > MAX_FRAME:
        raise PipeRemoteError(f"frame of {len(frame)} bytes, more than {MAX_FRAME}")
    try:
        data = json.loads(frame.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PipeRemoteError(f"not a JSON message ({exc}): {_start(frame)}") from None
    if not isinstance(data, dict):
        raise PipeRemoteError(f"not a JSON object: {_start(frame)}")
    name = data.pop("type", None)
    cls = _CLASS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise PipeRemoteError(f"unknown message type {name!r}: {_start(frame)}")
    try:
        return from_json(cls, data, name)
    except InvalidValue as exc:
        raise PipeRemoteError(f"bad {name} message: {exc}") from None


class PipeEnd:
    """One side of the pipe: what it may send is encoded, what the other may send decoded."""

    def __init__(self, side: Side) -> None:
        self.side = side

    def encode(self, message: Message) -> bytes:
        sender = _SENDER.get(type(message))
        if sender is not None and sender is not self.side:
            raise PipeLocalError(f"{_TYPE[type(message)]} is sent by {sender.value}, "
                                 f"not by {self.side.value}")
        return encode(message)

    def decode(self, frame: bytes) -> Message:
        message = decode(frame)
        if _SENDER[type(message)] is self.side:
            raise PipeRemoteError(f"{_TYPE[type(message)]} is sent by {self.side.value}, "
                                  f"so {self.side.value} cannot receive it")
        return message


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _start(frame: bytes) -> str:
    return repr(frame[:60]) + ("..." if len(frame) > 60 else "")
