"""Which messages are mailcall's own voicemail and fax deposits: sealed, not just labelled.

The same rule as the lamp's (:mod:`mailcall.mwi.origin`), for both contexts:
exactly one ``Message-Context`` whose token is ``voice-message`` or
``fax-message``, and one ``Mailcall-Deposit`` token that the deposit key proves
was written for this Message-ID, this user's address and that context. Mail from
outside claiming to be voice, or a deposit copied from another user, is mail.
"""

from __future__ import annotations

from email.message import Message
from typing import Literal

from mailcall.core.decisions.mailing import message_context
from mailcall.deposit.seal import SEAL_HEADER, token_valid

DepositKind = Literal["voice", "fax"]
CONTEXTS: dict[str, DepositKind] = {"voice-message": "voice", "fax-message": "fax"}
FETCHED = ("Message-Context", SEAL_HEADER, "Message-ID")


def _one(headers: Message, name: str) -> str | None:
    values = headers.get_all(name) or []
    return str(values[0]) if len(values) == 1 else None


def deposit_kind(headers: Message, *, key: bytes | None, recipient: str) -> DepositKind | None:
    """"voice" or "fax" when `headers` are those of a mailcall deposit sealed for `recipient`;
    None for anything else (and when no key could be read: nothing is proven then)."""
    if key is None:
        return None
    context = _one(headers, "Message-Context")
    if context is None:
        return None
    kind = CONTEXTS.get(message_context(context))
    token = _one(headers, SEAL_HEADER)
    message_id = _one(headers, "Message-ID")
    if kind is None or not token or not message_id:
        return None
    return kind if token_valid(key, token, message_id, recipient, context) else None
