"""What the spool knows of one deposit: the record kept as ``STATE/ID.json``.

A typed value, so that the worker, the build processes and ``mailcall spool``
read the same fields the same way, and a record damaged on disk is refused
when it is read (the spool sets it aside) rather than halfway through a
delivery. The JSON is the one mailcall has always written (see
``tests/deposit/spool-records/``), so records left by an older version are
delivered by this one, and ``mailcall spool list --json`` prints what it
printed before. Keys it does not know are ignored, and not written back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from mailcall.core.decisions.deposits import Deposit, FaxMessage, VoiceMessage

from .typed_json import InvalidValue, from_json, from_json_fields, to_json

Kind = Literal["voice", "fax"]
State = Literal["incoming", "deferred", "parked", "delivered"]
Status = Literal["delivered", "temporary", "permanent"]

_DEPOSIT_CLASSES: dict[str, type] = {"voice": VoiceMessage, "fax": FaxMessage}


def kind_of(message: Deposit) -> Kind:
    return "voice" if isinstance(message, VoiceMessage) else "fax"


def deposit_to_json(message: Deposit) -> dict[str, Any]:
    """The deposit's fields; which class it is goes beside it (the record's ``kind``)."""
    return to_json(message)


def deposit_from_json(kind: str, data: Any, where: str = "deposit") -> Deposit:
    """Keys a field no longer has are ignored: records outlive the code that wrote them."""
    cls = _DEPOSIT_CLASSES.get(kind)
    if cls is None:
        raise InvalidValue(f"kind: expected 'voice' or 'fax', got {kind!r}")
    return from_json(cls, data, where, extra_keys=True)


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What the server said for one recipient, at the last attempt."""

    recipient: str
    status: Status
    reply: str
    """The server's reply ("250 2.0.0 ... Saved"), or what failed locally ("connect: ...")."""
    at: datetime


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    id: str
    kind: Kind
    deposit: Deposit
    accepted_at: datetime
    """When the spool took it, or when ``mailcall spool retry`` put it back (the give-up clock)."""
    payload: str | None = None
    """The spool's copy of the recording or fax, relative to the spool root (None: none)."""
    note: str = ""
    """Why there is no payload ("... does not exist"), for the admin."""
    attempts: int = 0
    next_attempt: datetime | None = None
    last_error: str = ""
    results: tuple[DeliveryResult, ...] = ()
    state: State = "incoming"
    """The folder it was read from (written into the file too, for whoever reads it)."""
    message_id: str | None = None
    """Set at the first attempt: the Message-ID its message carries."""
    last_attempt_at: datetime | None = None
    notify_pending: bool = False
    """Delivered, and its mobile notification not yet in the notifier's durable queue:
    the delivery process hands it over again at start (docs/deposit.md, "Exactly once")."""

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id, "kind": self.kind, "deposit": deposit_to_json(self.deposit),
            "payload": self.payload, "note": self.note,
            "accepted_at": self.accepted_at.isoformat(), "attempts": self.attempts,
            "next_attempt": self.next_attempt.isoformat() if self.next_attempt else None,
            "last_error": self.last_error, "results": to_json(self.results),
            "state": self.state,
        }
        # Absent until the first attempt, as they always were.
        if self.message_id is not None:
            data["message_id"] = self.message_id
        if self.last_attempt_at is not None:
            data["last_attempt_at"] = self.last_attempt_at.isoformat()
        if self.notify_pending:  # absent otherwise: records stay as they always were
            data["notify_pending"] = True
        return data

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json()).encode()

    @classmethod
    def from_json(cls, data: Any) -> SpoolRecord:
        """Raises :class:`InvalidValue` naming the first field that is wrong."""
        if not isinstance(data, dict):
            raise InvalidValue("not a spool record (expected a JSON object)")
        values = from_json_fields(cls, data, "record", extra_keys=True, skip=("deposit",))
        if "deposit" not in data:
            raise InvalidValue("record: deposit is missing")
        return cls(deposit=deposit_from_json(values["kind"], data["deposit"]), **values)

    @classmethod
    def from_bytes(cls, data: bytes) -> SpoolRecord:
        return cls.from_json(json.loads(data))
