"""What the decision functions return: plans that adapters carry out step by step.

Plans are plain frozen data so that the same plan can be printed by
``mailcall route --explain``, serialised with ``--json`` and executed by the
FastAGI ``route`` handler, and the three can never disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal

CalleeState = Literal["available", "busy", "unavailable", "unknown"]
CALLEE_STATES: tuple[str, ...] = ("available", "busy", "unavailable", "unknown")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Something to ring: an internal extension or an external number (E.164)."""

    kind: Literal["extension", "number"]
    value: str
    user: str | None = None


@dataclass(frozen=True, slots=True)
class Ring:
    """Ring `targets` at once for `seconds`; on answer the plan ends."""

    targets: tuple[Endpoint, ...]
    seconds: int
    who: str
    """User id or "@group" being rung."""
    why: str
    own: bool = False
    """True when this rings the callee themself: its dial status picks the greeting."""
    after: tuple[str, ...] = ()
    """Take this step only if the callee's own ring ended in one of these outcomes
    ("busy", "no-answer", "unavailable"); empty: whatever happened before."""
    kind: str = field(default="ring", init=False)


@dataclass(frozen=True, slots=True)
class Voicemail:
    """Take a message into `mailbox`'s voicemail."""

    mailbox: str
    greeting: str | None
    """"busy", "unavailable" or "absence"; None: "busy" if the callee's own ring
    ended BUSY and the user may have a busy greeting, else "unavailable"."""
    why: str
    kind: str = field(default="voicemail", init=False)


@dataclass(frozen=True, slots=True)
class Hangup:
    """Nothing more can be done: end the call politely."""

    why: str
    kind: str = field(default="hangup", init=False)


Step = Ring | Voicemail | Hangup


@dataclass(frozen=True, slots=True)
class CallRequest:
    callee: str
    """Extension or number as dialled."""
    caller: str
    """The caller's number as Asterisk gave it, or "" when withheld."""
    at: datetime
    """When the call arrives: the caller's clock, so that a decision is reproducible."""
    state: str = "unknown"


@dataclass(frozen=True, slots=True)
class CallPlan:
    request: CallRequest
    callee: str | None
    """User id, "@group", or None when nobody has that extension or number."""
    steps: tuple[Step, ...]
    explanation: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class Notify:
    user: str
    medium: str
    address: str
    """Mobile number, webhook URL or mail address, depending on the medium."""
    why: str
    kind: str = field(default="notify", init=False)


@dataclass(frozen=True, slots=True)
class AutoReply:
    to: str
    subject: str
    body: str
    days: int
    why: str
    kind: str = field(default="auto-reply", init=False)


@dataclass(frozen=True, slots=True)
class FileInto:
    folder: str
    why: str
    kind: str = field(default="fileinto", init=False)


MailAction = Notify | AutoReply | FileInto


@dataclass(frozen=True, slots=True)
class MailRequest:
    recipient: str
    sender: str
    at: datetime
    """When the mail arrives: the caller's clock, so that a decision is reproducible."""
    context: str = ""
    """The Message-Context header value (RFC 3458), e.g. "voice-message"."""
    auto_submitted: str = ""
    list_id: str = ""
    precedence: str = ""
    subject: str = ""


@dataclass(frozen=True, slots=True)
class MailPlan:
    request: MailRequest
    user: str | None
    actions: tuple[MailAction, ...]
    explanation: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True, slots=True)
class DepositPlan:
    """Where a voicemail or fax goes and how it is packaged."""

    mailbox: str
    recipient: str
    """The mail address the message is delivered to."""
    display_name: str
    language: str
    kind: Literal["voice", "fax"]
    audio_format: str
    fax_formats: tuple[str, ...]
    transcription: bool
    notify: tuple[Notify, ...]
    explanation: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value
