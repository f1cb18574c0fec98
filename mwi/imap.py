"""Counting one user's voice messages over IMAP, as that user, without the user's password.

Any IMAP server will do: the count is ``EXAMINE`` (read-only, so no flag or
\\Recent changes), two ``UID SEARCH`` (all undeleted candidates, and the unseen
ones) and one ``UID FETCH`` of two header lines per candidate, which
:mod:`mailcall.mwi.origin` checks. A message flagged \\Deleted no longer
counts: a client that deletes sets that flag first, and the lamp follows at
once rather than at the expunge.

Logging in on behalf of a user (docs/mwi.md, contrib/dovecot/91-mailcall-mwi.conf):

* ``login = "master"``: Dovecot's master user, ``LOGIN user*mailcall-mwi pw``;
* ``login = "authzid"``: SASL PLAIN with an authorization identity
  (RFC 4616: ``user NUL mailcall-mwi NUL pw``), which other servers accept too.

Why the standard library's blocking ``imaplib`` in a bounded thread pool: each
count is five short commands on a connection used once (a master login binds
the connection to one user), the pool size is the bound on IMAP connections
the issue asks for, and no dependency is added. The threads only wait on the
socket; the event loop is never blocked.
"""

from __future__ import annotations

import imaplib
import ipaddress
import re
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .counts import CountError, Counts, counts
from .origin import CONTEXT_HEADER, FETCHED, counts_as_voice

_UIDS = re.compile(rb"\d+")
_FETCH_UID = re.compile(rb"UID (\d+)")


@dataclass(frozen=True, slots=True)
class ImapSettings:
    host: str = "127.0.0.1"
    port: int = 143
    security: str = "none"
    """"none" (loopback only), "starttls" or "tls"."""
    login: str = "master"
    """"master" (user*master) or "authzid" (SASL PLAIN authorization identity)."""
    master_user: str = "mailcall-mwi"
    password_file: str = "/etc/mailcall/imap-master.secret"  # noqa: S105 - a path
    separator: str = "*"
    folder: str = "Voicemail"
    max_connections: int = 8
    timeout: float = 10.0


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def quote(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ImapCounter:
    """Blocking counter; call :meth:`count` from a worker thread."""

    def __init__(self, settings: ImapSettings, key: Callable[[], bytes],
                 password: Callable[[], str] | None = None) -> None:
        self.settings = settings
        self._key = key
        """The deposit key (read at each count: never cached across a replacement)."""
        self._password = password or (lambda: _read_password(settings.password_file))

    @property
    def where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def count(self, login: str, recipient: str) -> Counts:
        """The counts in `login`'s voice folder, of deposits sealed for `recipient`
        (the user's address); CountError when they cannot be read."""
        s = self.settings
        try:
            key = self._key()
        except Exception as exc:  # DepositKeyError, OSError: the message says what to do
            raise CountError("key", str(exc)) from None
        try:
            conn = self._connect()
        except (OSError, imaplib.IMAP4.error, ssl.SSLError) as exc:
            raise CountError("unreachable", f"IMAP server {self.where} unreachable: "
                             f"{_why(exc)}") from None
        try:
            self._login(conn, login)
            return self._count(conn, key, recipient)
        except CountError:
            raise
        except (OSError, imaplib.IMAP4.abort, ssl.SSLError) as exc:
            raise CountError("unreachable", f"IMAP server {self.where} failed while counting "
                             f"{login}'s {s.folder}: {_why(exc)}") from None
        except imaplib.IMAP4.error as exc:
            raise CountError("protocol", f"IMAP server {self.where} answered oddly while "
                             f"counting {login}'s {s.folder}: {_why(exc)}") from None
        finally:
            try:
                conn.logout()
            except Exception:  # noqa: S110 - the count is done or failed already
                pass

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        if s.security == "tls":
            return imaplib.IMAP4_SSL(s.host, s.port, ssl_context=ssl.create_default_context(),
                                     timeout=s.timeout)
        conn = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
        if s.security == "starttls":
            conn.starttls(ssl.create_default_context())
        return conn

    def _login(self, conn: imaplib.IMAP4, login: str) -> None:
        s = self.settings
        password = self._password()
        try:
            if s.login == "authzid":
                blob = f"{login}\0{s.master_user}\0{password}".encode()
                conn.authenticate("PLAIN", lambda _challenge: blob)
            else:
                # imaplib quotes the password itself, not the user name (which holds the separator)
                conn.login(quote(f"{login}{s.separator}{s.master_user}"), password)
        except imaplib.IMAP4.abort:
            raise
        except imaplib.IMAP4.error as exc:
            raise CountError("auth", f"IMAP server {self.where} refused master login "
                             f"{s.master_user!r} for {login!r} ({_why(exc)}): check the master "
                             f"passdb and {s.password_file} (docs/mwi.md)") from None

    def _count(self, conn: imaplib.IMAP4, key: bytes, recipient: str) -> Counts:
        s = self.settings
        typ, data = conn.select(quote(s.folder), readonly=True)
        if typ != "OK":
            raise CountError("folder", f"folder {s.folder!r} cannot be opened "
                             f"({_why(data)}): it is created by the first voice deposit; "
                             f"check [mail] voice_folder")
        criteria = f'UNDELETED HEADER {CONTEXT_HEADER} "voice-message"'
        every = _search(conn, criteria)
        if not every:
            return counts(0, 0)
        unseen = _search(conn, "UNSEEN " + criteria)
        fields = " ".join(FETCHED)
        typ, data = conn.uid("FETCH", _uid_set(every), f"(BODY.PEEK[HEADER.FIELDS ({fields})])")
        if typ != "OK":
            raise CountError("protocol", f"FETCH of header lines refused: {_why(data)}")
        new = old = 0
        for item in data:
            if not isinstance(item, tuple) or len(item) < 2:
                continue
            m = _FETCH_UID.search(item[0])
            if m is None or not counts_as_voice(item[1], key=key, recipient=recipient):
                continue
            if int(m.group(1)) in unseen:
                new += 1
            else:
                old += 1
        return counts(new, old)


def _search(conn: imaplib.IMAP4, criteria: str) -> set[int]:
    typ, data = conn.uid("SEARCH", criteria)
    if typ != "OK":
        raise CountError("protocol", f"SEARCH {criteria} refused: {_why(data)}")
    found: set[int] = set()
    for line in data:
        if line:
            found.update(int(u) for u in _UIDS.findall(line))
    return found


def _uid_set(uids: set[int]) -> str:
    """Compact ranges (1:40,45): a folder of thousands of messages stays one short command."""
    out: list[str] = []
    ordered = sorted(uids)
    start = prev = ordered[0]
    for uid in ordered[1:]:
        if uid == prev + 1:
            prev = uid
            continue
        out.append(f"{start}:{prev}" if prev != start else str(start))
        start = prev = uid
    out.append(f"{start}:{prev}" if prev != start else str(start))
    return ",".join(out)


def _read_password(path: str) -> str:
    try:
        text = Path(path).read_text("utf-8")
    except OSError as exc:
        raise CountError("auth", f"cannot read the IMAP master password file {path}: "
                         f"{exc.strerror}") from None
    value = text.split("\n", 1)[0].rstrip("\r")
    if not value:
        raise CountError("auth", f"the IMAP master password file {path} is empty")
    return value


def _why(value: object) -> str:
    if isinstance(value, list):
        value = b" ".join(v for v in value if isinstance(v, bytes))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, socket.timeout):
        return "timed out"
    if isinstance(value, OSError) and value.strerror:
        return value.strerror
    return " ".join(str(value).split())[:200] or type(value).__name__
