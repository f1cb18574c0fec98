"""What interrupts the menu's I/O: a key cutting a prompt, a mailbox or a message missing."""

from __future__ import annotations


class NoMailbox(Exception):
    """The call has no IMAP session and could not open one (already said and logged)."""


class NotPlayable(Exception):
    """This message cannot be played here (no decoder loaded)."""


class KeyPressed(Exception):
    """Not an error: a key cut what was playing; it is the caller's next input."""

    def __init__(self, digit: str) -> None:
        super().__init__(digit)
        self.digit = digit
