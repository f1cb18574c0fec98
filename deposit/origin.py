"""Which messages in a mailbox are mailcall's own voicemail and fax deposits: sealed, not labelled.

Anyone can send mail with ``Message-Context: voice-message``, and a mail client
can move anything into the voice folder. A message is a deposit only when it has
exactly one ``Message-Context`` whose token (RFC 3458, parameters and comments
removed) is ``voice-message`` or ``fax-message`` (not a longer token that merely
contains it, which IMAP's substring ``SEARCH HEADER`` would match), and one
``Mailcall-Deposit`` token that the deposit key proves was written for this
Message-ID, this user's address and that context (:mod:`.seal`). A deposit copied
from another user, or a forged header, is mail.

The one rule for readers of filed messages: the lamp's counts (:mod:`mailcall.mwi`)
and the phone menu's mailbox (:mod:`mailcall.mailstore`). A delivery under way is
judged by :func:`.seal.delivery_problem`, which also wants the token fresh.
"""

from __future__ import annotations

from email.message import Message
from typing import Literal

from mailcall.core.decisions.mailing import message_context

from .seal import SEAL_HEADER, token_valid

DepositKind = Literal["voice", "fax"]
CONTEXT_HEADER = "Message-Context"
CONTEXTS: dict[str, DepositKind] = {"voice-message": "voice", "fax-message": "fax"}
FETCHED = (CONTEXT_HEADER, SEAL_HEADER, "Message-ID")
"""The header lines a reader fetches per message to decide (all it needs)."""


def _one(headers: Message, name: str) -> str | None:
    values = headers.get_all(name) or []
    return str(values[0]) if len(values) == 1 else None


def deposit_kind(headers: Message, *, key: bytes | None, recipient: str) -> DepositKind | None:
    """"voice" or "fax" when `headers` are those of a mailcall deposit sealed for `recipient`;
    None for anything else (and when no key could be read: nothing is proven then)."""
    if key is None:
        return None
    context = _one(headers, CONTEXT_HEADER)
    if context is None:
        return None
    kind = CONTEXTS.get(message_context(context))
    token = _one(headers, SEAL_HEADER)
    message_id = _one(headers, "Message-ID")
    if kind is None or not token or not message_id:
        return None
    return kind if token_valid(key, token, message_id, recipient, context) else None
