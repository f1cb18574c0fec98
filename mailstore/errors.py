"""The two failures the phone menu tells apart: the mailbox is out of reach, or one message is.

:class:`MailboxUnavailable` means "apologise and go on without the mailbox": the
server is down, slow, refusing the master login, or the connection bound is
reached. :class:`MessageUnreadable` means "this message cannot be played; next":
it was moved or expunged by a mail client meanwhile, has no audio part, or its
folder was rebuilt (UIDVALIDITY changed), so its UID may now name another message.
"""

from __future__ import annotations

from typing import Literal

Reason = Literal["unreachable", "timeout", "auth", "busy", "folder", "protocol", "key",
                 "closed"]


class MailboxUnavailable(Exception):
    """The mailbox cannot be used now; `reason` says why, the message says where (for the log).

    The message never holds a password; it names the server, the account and
    what the admin should check.
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason


class MessageUnreadable(Exception):
    """This one message cannot be played or read; the session is still usable."""
