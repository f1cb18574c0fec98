"""The messages an AMI connection emits: what Asterisk said, typed for the client.

Kept apart from the machine (:mod:`mailcall.ami.protocol`) so that the client,
the lamp and the tests can name an answer or an event without reaching into
the parser that builds them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One AMI message: its ``Key: Value`` lines in order (a key may repeat, e.g. Output)."""

    fields: tuple[tuple[str, str], ...]

    def get(self, key: str, default: str | None = None) -> str | None:
        """The first value of `key`, compared without case as Asterisk does."""
        low = key.lower()
        for k, v in self.fields:
            if k.lower() == low:
                return v
        return default

    def get_all(self, key: str) -> list[str]:
        low = key.lower()
        return [v for k, v in self.fields if k.lower() == low]

    def to_dict(self) -> dict[str, str]:
        """First value of each key (for logs and JSON output)."""
        out: dict[str, str] = {}
        for k, v in self.fields:
            out.setdefault(k, v)
        return out


@dataclass(frozen=True, slots=True)
class Banner:
    """The greeting line; `version` is the AMI version (13.0.0 on current Asterisk)."""

    version: str


@dataclass(frozen=True, slots=True)
class Response:
    """The answer to one action, with the events it listed (empty for plain answers)."""

    action_id: str
    action: str
    """Name of the action this answers, as it was sent."""
    status: str
    """"Success", "Error", "Goodbye" (to Logoff), ..."""
    message: Message
    events: tuple[Message, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status.lower() in ("success", "goodbye", "pong")

    @property
    def text(self) -> str:
        """The ``Message:`` line: Asterisk's reason for an error."""
        return self.message.get("Message", "") or ""


@dataclass(frozen=True, slots=True)
class Event:
    """An unsolicited event: ``FullyBooted``, ``MessageWaiting``, ``Shutdown``, ..."""

    name: str
    message: Message


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """End of file after a clean point; `pending` actions will never be answered."""

    pending: tuple[str, ...]


AmiEvent = Banner | Response | Event | ConnectionClosed
"""Everything :meth:`mailcall.ami.protocol.Connection.next_event` may return but NEED_DATA."""
