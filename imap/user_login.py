"""Check a user's own password with an IMAP LOGIN: the web page's login, no new password.

Unlike :func:`mailcall.imap.connect_as` (a master login acting for a user), this
logs in *as* the user with the password they typed, then logs out at once: the
answer is the whole point. Blocking ``imaplib``, run by the caller in a bounded
thread pool. The password is never kept, logged or put in an error message.
"""

from __future__ import annotations

import imaplib
import ipaddress
import ssl
from typing import Literal

from .login import ImapLoginError, describe, logout_quietly
from .settings import is_loopback, quote

Security = Literal["none", "starttls", "tls"]
_TEMPORARY = ("[UNAVAILABLE]", "[SERVERBUG]")
"""RFC 5530 codes for "the server could not check": not a wrong password."""


def check_password(host: str, port: int, user: str, password: str, *,
                   security: str = "none", timeout: float = 10.0,
                   client_ip: str | None = None) -> bool:
    """True when the IMAP server accepts `user` with `password`, False when it refuses.

    `client_ip` (the browser's address) is told to the server with ``ID
    ("x-originating-ip" ...)`` (RFC 2971) before the login: Dovecot believes it from
    its ``login_trusted_networks`` only, and then logs that address and counts its
    failed-login penalty per browser rather than for mailcall's own address, where
    one guesser's failures would slow every employee's login. Raises
    :class:`ImapLoginError` ("unreachable" or "protocol") when the server cannot give
    an answer, so a server down is never taken for a wrong password.
    """
    where = f"{host}:{port}"
    if security == "none" and not is_loopback(host):
        raise ImapLoginError("protocol", f"refusing to send a user's password in clear to "
                             f"{where}: set security = \"starttls\" or \"tls\"")
    if not user or any(c in user for c in "\0\r\n") or any(c in password for c in "\0\r\n"):
        return False  # cannot be said in an IMAP LOGIN: no account has it
    try:
        if security == "tls":
            conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                host, port, ssl_context=ssl.create_default_context(), timeout=timeout)
        else:
            conn = imaplib.IMAP4(host, port, timeout=timeout)
            if security == "starttls":
                conn.starttls(ssl.create_default_context())
    except (OSError, imaplib.IMAP4.error) as exc:
        raise ImapLoginError("unreachable", f"IMAP server {where} unreachable: "
                             f"{describe(exc)}") from None
    try:
        if client_ip is not None and "ID" in conn.capabilities:
            conn.xatom("ID", f'("x-originating-ip" "{ipaddress.ip_address(client_ip)}")')
        # imaplib quotes the password itself, not the user name.
        conn.login(quote(user), password)
        return True
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise ImapLoginError("unreachable", f"IMAP server {where} dropped the connection "
                             f"during a user's login: {describe(exc)}") from None
    except imaplib.IMAP4.error as exc:
        if any(code in str(exc) for code in _TEMPORARY):
            raise ImapLoginError("unreachable", f"IMAP server {where} cannot check passwords "
                                 f"now: {describe(exc)}") from None
        return False  # NO [AUTHENTICATIONFAILED]: a wrong password (never in the message)
    finally:
        logout_quietly(conn)
