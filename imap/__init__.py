"""Logging in to the IMAP server: on behalf of a user, and checking a user's own password.

Shared by the message-waiting lamp (``mailcall.mwi``) and the phone menu's
mailbox access: both read a user's folders as that user, through one account
the server trusts to act for others (Dovecot's master user, or a SASL PLAIN
authorization identity on servers such as Cyrus). See docs/mwi.md for the
server side. The employees' page checks the password an employee types with a
plain LOGIN that reads nothing (``user_login.py``, docs/web.md); that password
is never kept.

``settings`` holds where the server is and how to log in; ``login`` opens a
logged-in :class:`imaplib.IMAP4` (:func:`connect_as`) or raises one
:class:`ImapLoginError` whose ``kind`` says whether to retry later
("unreachable"), fix the credentials ("auth") or look at the server
("protocol").
"""

from .login import ImapLoginError, connect_as, describe, logout_quietly, read_password
from .settings import ImapSettings, is_loopback, quote

__all__ = ["ImapLoginError", "ImapSettings", "connect_as", "describe", "is_loopback",
           "logout_quietly", "quote", "read_password"]
