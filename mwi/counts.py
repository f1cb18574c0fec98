"""What a voice folder holds: new (unseen) and old (seen) messages, never negative.

A count exists only when the mailbox was read; every failure to read it is a
:class:`CountError`, never a number. That is the whole defence against
Asterisk's own app_voicemail_imap sending "Voice-Message: -1/0" while its IMAP
server was down (asterisk/asterisk issue #64): there is no value for
"unknown" that could reach the wire.
"""

from __future__ import annotations

from functools import lru_cache

from mailcall.core.contracts import MAX_VOICE_COUNT as MAX_COUNT
from mailcall.core.contracts import VoiceCounts as Counts

__all__ = ["MAX_COUNT", "CountError", "Counts", "counts"]


@lru_cache(maxsize=4096)
def counts(new: int, old: int) -> Counts:
    """A shared :class:`Counts`: 100,000 watched mailboxes hold a few hundred distinct ones."""
    return Counts(new, old)


class CountError(Exception):
    """The mailbox could not be read; `kind` says which way, the message what to do."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        """"unreachable", "key" or "server" (every mailbox fails alike: logged once per
        spell), "auth", "folder", "protocol" (this mailbox)."""
