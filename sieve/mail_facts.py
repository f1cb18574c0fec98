"""What one request from Dovecot's Sieve script says: the verb, Dovecot's environment and
the mail's header fields.

Apart from the socket (:mod:`.bridge_server`) and the decision (:mod:`.mail_decision`)
because it is the one place outside text enters the bridge: header values arrive
URL-encoded (``set :encodeurl``) and are decoded here, then cleaned by the project's
one rule for outside text (:func:`mailcall.core.text.display_text`) before anything
shows or logs them.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from mailcall.core.sansio import RemoteProtocolError
from mailcall.core.text import display_text

from . import script_protocol as sp
from .script_protocol import Environment

FIELD_LIMIT = 998
"""Longest header value kept (RFC 5322's line limit)."""
MAX_FIELDS = 32
"""Header fields kept per request; the generated script sends seven."""


@dataclass(frozen=True, slots=True)
class BridgeRequest:
    args: tuple[str, ...]
    env: Environment
    fields: dict[str, str]
    """Header values from the ``key=urlencoded`` lines of the input (first one wins)."""

    @property
    def verb(self) -> str:
        return self.args[0] if self.args else ""

    @property
    def recipient(self) -> str:
        """The envelope recipient: the verb's first argument, else Dovecot's RECIPIENT."""
        return self.args[1] if len(self.args) > 1 else self.env.get("RECIPIENT")

    @property
    def sender(self) -> str:
        """The envelope sender: the verb's second argument, else Dovecot's SENDER."""
        return self.args[2] if len(self.args) > 2 else self.env.get("SENDER")


def parse_fields(data: bytes) -> dict[str, str]:
    """``key=value`` lines, values percent-decoded then cleaned as outside text."""
    fields: dict[str, str] = {}
    for raw in data.split(b"\n"):
        key, sep, value = raw.partition(b"=")
        if not sep:
            continue
        name = key.decode("ascii", errors="replace").strip().lower()
        if name in fields or len(fields) >= MAX_FIELDS:
            continue
        text = value.decode("ascii", errors="replace")
        if "%" in text:
            text = unquote(text, errors="replace")
        fields[name] = display_text(text, FIELD_LIMIT)
    return fields


class RequestReader:
    """Collects the protocol events of one connection into a :class:`BridgeRequest`."""

    __slots__ = ("args", "conn", "data", "env")

    def __init__(self, limits: sp.Limits) -> None:
        self.conn = sp.ScriptServerConnection(limits)
        self.env: Environment | None = None
        self.args: sp.Arguments | None = None
        self.data = bytearray()

    def feed(self, data: bytes) -> BridgeRequest | None:
        """Feed bytes (``b""`` at EOF); the request once complete, else None.

        Raises :class:`~mailcall.core.sansio.RemoteProtocolError` on bad input."""
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is sp.NEED_DATA:
                return None
            if isinstance(event, Environment):
                self.env = event
            elif isinstance(event, sp.Arguments):
                self.args = event
            elif isinstance(event, sp.Input):
                self.data += event.data
            elif isinstance(event, sp.EndOfInput):
                if self.env is None or self.args is None:
                    raise RemoteProtocolError("request ended before its arguments")
                return BridgeRequest(self.args.args, self.env, parse_fields(bytes(self.data)))
