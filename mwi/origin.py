"""Which messages of the voice folder count: the voice messages mailcall deposited.

A mail client can move anything into the voice folder, and anyone can send a
mail with ``Message-Context: voice-message``. A message counts only when

* its Message-Context token (RFC 3458, parameters and comments removed) is
  exactly ``voice-message`` — not a longer token that merely contains it (which
  IMAP's substring ``SEARCH HEADER`` would match);
* and its ``Mailcall-Deposit`` token (:mod:`mailcall.deposit.seal`) is the
  HMAC mailcall wrote over its Message-ID, this user's address and the
  context, checked with the deposit key: a copy sent to or moved from another
  user, or a forged header, does not count.

Every message of the voice folder is fetched (flags and these header lines);
this module decides on each one.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser

from mailcall.core.decisions.mailing import message_context
from mailcall.deposit.seal import SEAL_HEADER, token_valid

CONTEXT_HEADER = "Message-Context"
FETCHED = ("Message-Context", SEAL_HEADER, "Message-ID")
"""The header lines fetched per candidate message."""

_PARSER = BytesHeaderParser()


def _one(headers, name: str) -> str | None:
    values = headers.get_all(name) or []
    return str(values[0]) if len(values) == 1 else None


def counts_as_voice(header_block: bytes, *, key: bytes, recipient: str) -> bool:
    """True when the fetched header lines are those of a mailcall voice deposit to `recipient`."""
    headers = _PARSER.parsebytes(header_block)
    context = _one(headers, CONTEXT_HEADER)
    if context is None or message_context(context) != "voice-message":
        return False
    token = _one(headers, SEAL_HEADER)
    message_id = _one(headers, "Message-ID")
    if not token or not message_id:
        return False
    return token_valid(key, token, message_id, recipient, context)
