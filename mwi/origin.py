"""Which messages of the voice folder count: the voice messages mailcall deposited.

A mail client can move anything into the voice folder, and anyone can send a
mail with ``Message-Context: voice-message``. A message counts only when it is
a sealed voice deposit to this user, by the one rule of
:func:`mailcall.deposit.origin.deposit_kind` (exactly one ``voice-message``
context, and a ``Mailcall-Deposit`` token the deposit key proves was written
for its Message-ID, this user's address and that context).

Every message of the voice folder is fetched (flags and these header lines);
this module decides on each one.
"""

from __future__ import annotations

from email.parser import BytesHeaderParser

from mailcall.deposit.origin import CONTEXT_HEADER, FETCHED, deposit_kind

__all__ = ["CONTEXT_HEADER", "FETCHED", "counts_as_voice"]

_PARSER = BytesHeaderParser()


def counts_as_voice(header_block: bytes, *, key: bytes, recipient: str) -> bool:
    """True when the fetched header lines are those of a mailcall voice deposit to `recipient`."""
    headers = _PARSER.parsebytes(header_block)
    return deposit_kind(headers, key=key, recipient=recipient) == "voice"
