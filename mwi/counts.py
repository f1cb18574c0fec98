"""What a voice folder holds: new (unseen) and old (seen) messages, never negative.

A count exists only when the mailbox was read; every failure to read it is a
:class:`CountError`, never a number. That is the whole defence against
Asterisk's own app_voicemail_imap sending "Voice-Message: -1/0" while its IMAP
server was down (asterisk/asterisk issue #64): there is no value for
"unknown" that could reach the wire.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

MAX_COUNT = 1_000_000
"""More voice messages than anyone keeps: a larger number is a misread, not a count."""


@dataclass(frozen=True, slots=True)
class Counts:
    new: int
    old: int

    def __post_init__(self) -> None:
        for value in (self.new, self.old):
            if type(value) is not int or not 0 <= value <= MAX_COUNT:
                raise ValueError(f"not a message count: {value!r}")

    @property
    def waiting(self) -> bool:
        return self.new > 0

    def to_dict(self) -> dict[str, int]:
        return {"new": self.new, "old": self.old}


@lru_cache(maxsize=4096)
def counts(new: int, old: int) -> Counts:
    """A shared :class:`Counts`: 100,000 watched mailboxes hold a few hundred distinct ones."""
    return Counts(new, old)


class CountError(Exception):
    """The mailbox could not be read; `kind` says which way, the message what to do."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        """"unreachable" or "key" (every mailbox fails alike), "auth", "folder", "protocol"."""
