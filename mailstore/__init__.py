"""A user's mailbox as the phone menu sees it: voicemail, unread mail, text to read, actions.

``MailStore`` (store.py) is built once per process from :class:`MailstoreSettings`;
``async with store.session(login) as box`` opens one IMAP connection for a call.
docs/mailstore.md says how mailcall reaches the mailbox and with which rights.
"""

from .errors import MailboxUnavailable, MessageUnreadable
from .readable import Attachment, Readable
from .settings import MailstoreSettings
from .store import MailboxSession, MailStore
from .summary import MessageSummary, UnreadMail, VoiceMail

__all__ = ["Attachment", "MailStore", "MailboxSession", "MailboxUnavailable",
           "MailstoreSettings", "MessageSummary", "MessageUnreadable", "Readable", "UnreadMail",
           "VoiceMail"]
