"""Open an IMAP connection logged in as a user, through the master (or admin) account.

Why blocking ``imaplib``: a session logged in this way is bound to one user and
lives for a few short commands, so callers run it in a bounded thread pool (the
pool size is their bound on IMAP connections); no dependency is added.

Every failure is one :class:`ImapLoginError`; its message names the server,
the account and what to check, and never holds the password.
"""

from __future__ import annotations

import imaplib
import re
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from .settings import ImapSettings, is_loopback, quote

Kind = Literal["unreachable", "auth", "protocol"]


class ImapLoginError(Exception):
    """No logged-in session; `kind` says what to do, the message says where and why.

    * ``"unreachable"``: the server could not be reached or dropped the connection
      (retry later; every user fails alike);
    * ``"auth"``: the login was refused or the password file is unusable (fix the
      master passdb or the password file; retrying will not help);
    * ``"protocol"``: the server answered something unexpected.
    """

    def __init__(self, kind: Kind, message: str) -> None:
        super().__init__(message)
        self.kind: Kind = kind


def connect_as(settings: ImapSettings, user: str,
               password: str | Callable[[], str] | None = None) -> imaplib.IMAP4:
    """A connection logged in as `user` (the IMAP user name), in the authenticated state.

    `password` is the master (or admin) account's password, or a callable returning
    it; by default it is read from ``settings.password_file`` at each call, so a
    rotated password is used without a restart. The caller owns the connection:
    end it with :func:`logout_quietly`. Raises :class:`ImapLoginError`.
    """
    s = settings
    if s.security == "none" and not is_loopback(s.host):
        raise ImapLoginError("auth", f"refusing to send the IMAP master password in clear to "
                             f"{s.where}: set security = \"starttls\" or \"tls\", or use an "
                             f"IMAP server on loopback")
    if any(c in user for c in "\0\r\n") or not user:
        raise ImapLoginError("auth", f"not an IMAP user name: {user!r}")
    secret = _password(s, password)
    try:
        conn = _connect(s)
    except (OSError, imaplib.IMAP4.error) as exc:  # ssl.SSLError is an OSError
        if _lost(exc):
            raise ImapLoginError("unreachable", f"IMAP server {s.where} unreachable: "
                                 f"{describe(exc)}") from None
        # An odd greeting (not an IMAP server on that port), STARTTLS not offered.
        raise ImapLoginError("protocol", f"IMAP server {s.where} (security = "
                             f"{s.security!r}) answered oddly before the login: "
                             f"{describe(exc)}: check [imap] host, port and security") from None
    try:
        _login(conn, s, user, secret)
    except BaseException:
        logout_quietly(conn)
        raise
    return conn


def logout_quietly(conn: imaplib.IMAP4) -> None:
    """LOGOUT, ignoring a server already gone: the work is done or failed already."""
    try:
        conn.logout()
    except Exception:  # noqa: S110
        pass


def read_password(path: str) -> str:
    """The first line of `path`; ImapLoginError("auth") when it is unreadable or empty."""
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise ImapLoginError("auth", f"cannot read the IMAP master password file {path}: "
                             f"{exc.strerror}") from None
    except UnicodeDecodeError:
        raise ImapLoginError("auth", f"the IMAP master password file {path} is not UTF-8 "
                             f"text") from None
    value = text.split("\n", 1)[0].rstrip("\r")
    if not value:
        raise ImapLoginError("auth", f"the IMAP master password file {path} is empty "
                             f"(the password goes alone on its first line)")
    return value


def describe(value: object) -> str:
    """A short, one-line reason from an exception or an IMAP answer, for a log line."""
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, socket.timeout):
        return "timed out"
    if isinstance(value, OSError) and value.strerror:
        return value.strerror
    return " ".join(str(value).split())[:200] or type(value).__name__


def _lost(exc: BaseException) -> bool:
    """The connection failed or was dropped (retry later), as opposed to an answer we refuse."""
    if isinstance(exc, OSError):
        return True
    text = str(exc)
    return isinstance(exc, imaplib.IMAP4.abort) and (
        text.startswith("socket error") or "EOF" in text)


def _password(s: ImapSettings, password: str | Callable[[], str] | None) -> str:
    if password is None:
        return read_password(s.password_file)
    return password() if callable(password) else password


_GREETING_CAPS = re.compile(rb"\[CAPABILITY ([^\]]*)\]", re.I)


class _GreetingCapabilities:
    """Take the capabilities from the greeting when the server puts them there (RFC 3501
    §7.1 allows it; Dovecot does), instead of imaplib's extra CAPABILITY round trip. Only
    for the greeting: after STARTTLS they are asked for again, as RFC 3501 requires."""

    welcome: bytes
    capabilities: tuple[str, ...]

    def _get_capabilities(self) -> None:
        if not getattr(self, "_greeted", False):
            self._greeted = True
            m = _GREETING_CAPS.search(self.welcome or b"")
            if m is not None:
                self.capabilities = tuple(m.group(1).decode("ascii", "replace").upper().split())
                return
        super()._get_capabilities()  # type: ignore[misc]


class _IMAP4(_GreetingCapabilities, imaplib.IMAP4):
    pass


class _IMAP4_SSL(_GreetingCapabilities, imaplib.IMAP4_SSL):
    pass


def _connect(s: ImapSettings) -> imaplib.IMAP4:
    if s.security == "tls":
        return _IMAP4_SSL(s.host, s.port, ssl_context=ssl.create_default_context(),
                          timeout=s.timeout)
    conn = _IMAP4(s.host, s.port, timeout=s.timeout)
    if s.security == "starttls":
        try:
            conn.starttls(ssl.create_default_context())
        except BaseException:
            logout_quietly(conn)
            raise
    return conn


def _login(conn: imaplib.IMAP4, s: ImapSettings, user: str, password: str) -> None:
    try:
        if s.login == "authzid":
            blob = f"{user}\0{s.master_user}\0{password}".encode()
            conn.authenticate("PLAIN", lambda _challenge: blob)
        else:
            # imaplib quotes the password itself, not the user name (which holds the separator)
            conn.login(quote(f"{user}{s.separator}{s.master_user}"), password)
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise ImapLoginError("unreachable", f"IMAP server {s.where} dropped the connection "
                             f"during the login as {user!r}: {describe(exc)}") from None
    except imaplib.IMAP4.error as exc:
        how = ("SASL PLAIN authorization identity" if s.login == "authzid"
               else f"master login {user}{s.separator}{s.master_user}")
        raise ImapLoginError("auth", f"IMAP server {s.where} refused the {how} "
                             f"({describe(exc)}): check the master passdb and "
                             f"{s.password_file} (docs/mwi.md)") from None
