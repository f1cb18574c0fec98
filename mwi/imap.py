"""Counting one user's voice messages over IMAP, as that user, without the user's password.

Any IMAP server will do: after the login, the count is ``EXAMINE`` (read-only,
so no flag or \\Recent changes), one ``UID FETCH 1:*`` of the flags and three
header lines of every message, and ``LOGOUT``, pipelined (RFC 3501 §5.5: sent
at once, answered in order): one round trip, and no server-side search whose
substring match would have to be checked again anyway. Which messages count
is decided on what was fetched (:mod:`mailcall.mwi.origin`). A message flagged
\\Deleted no longer counts: a client that deletes sets that flag first, and
the lamp follows at once rather than at the expunge.

Logging in on behalf of a user is :func:`mailcall.imap.connect_as` (master
user ``user*mailcall-mwi`` or SASL PLAIN authzid; docs/mwi.md).

Why a blocking connection in a bounded thread pool: each count is one login
and one pipelined exchange on a connection used once (a master login binds
the connection to one user), the pool size is the bound on IMAP connections,
and no dependency is added. The threads only wait on the socket; the event
loop is never blocked.
"""

from __future__ import annotations

import contextlib
import imaplib
from collections.abc import Callable
from dataclasses import dataclass

from imapclient.imap_utf7 import encode as imap_utf7

from mailcall.core.sansio import RemoteProtocolError
from mailcall.imap import ImapLoginError, connect_as, describe, quote, read_password
from mailcall.imap import ImapSettings as ServerSettings
from mailcall.imap.protocol import ResponseReader, Tagged, Untagged, fetch_items

from .counts import CountError, Counts, counts
from .origin import FETCHED, counts_as_voice


@dataclass(frozen=True, slots=True)
class ImapSettings(ServerSettings):
    """The IMAP server and login (:class:`mailcall.imap.ImapSettings`), plus the lamp's own."""

    folder: str = "Voicemail"
    max_connections: int = 8


class ImapCounter:
    """Blocking counter; call :meth:`count` from a worker thread."""

    def __init__(self, settings: ImapSettings, key: Callable[[], bytes],
                 password: Callable[[], str] | None = None) -> None:
        self.settings = settings
        self._key = key
        """The deposit key (read at each count: never cached across a replacement)."""
        self._password = password
        """None: read ``settings.password_file`` at each login (rotation without restart)."""

    @property
    def where(self) -> str:
        return self.settings.where

    def count(self, login: str, recipient: str) -> Counts:
        """The counts in `login`'s voice folder, of deposits sealed for `recipient`
        (the user's address); CountError when they cannot be read."""
        s = self.settings
        try:
            key = self._key()
        except Exception as exc:  # DepositKeyError, OSError: the message says what to do
            raise CountError("key", str(exc)) from None
        try:
            # Read here, not in the login: an unreadable password file is this machine's
            # problem, the same for every mailbox (one line), not a refused login.
            password = self._password() if self._password else read_password(s.password_file)
        except ImapLoginError as exc:
            raise CountError("server", str(exc)) from None
        try:
            conn = connect_as(s, login, password)
        except ImapLoginError as exc:
            # Before the login, "protocol" is the server's or mwi.toml's problem
            # (wrong port, security): every mailbox fails alike.
            raise CountError("server" if exc.kind == "protocol" else exc.kind,
                             str(exc)) from None
        try:
            return self._count(conn, key, recipient)
        except CountError:
            raise
        except (OSError, imaplib.IMAP4.abort) as exc:
            raise CountError("unreachable", f"IMAP server {self.where} failed while counting "
                             f"{login}'s {s.folder}: {describe(exc)}") from None
        except (imaplib.IMAP4.error, RemoteProtocolError) as exc:
            raise CountError("protocol", f"IMAP server {self.where} answered oddly while "
                             f"counting {login}'s {s.folder}: {describe(exc)}") from None
        finally:
            with contextlib.suppress(Exception):
                conn.shutdown()  # LOGOUT was pipelined with the count

    def _count(self, conn: imaplib.IMAP4, key: bytes, recipient: str) -> Counts:
        """EXAMINE, one UID FETCH of the flags and header lines of every message, LOGOUT:
        sent at once, read in order (one round trip). \\Deleted, \\Seen and which messages
        count are decided here, on what was fetched."""
        s = self.settings
        # Modified UTF-7 (RFC 3501 5.1.3): a policy's voice folder may be "Répondeur".
        conn.send(b"mwi1 EXAMINE " + quote(imap_utf7(s.folder).decode("ascii")).encode("ascii")
                  + b"\r\n"
                  + b"mwi2 UID FETCH 1:* (UID FLAGS BODY.PEEK[HEADER.FIELDS (" + _FIELDS
                  + b")])\r\nmwi3 LOGOUT\r\n")
        reader = ResponseReader()
        done: dict[bytes, Tagged] = {}
        messages: dict[bytes, dict[bytes, object]] = {}
        while b"mwi3" not in done:
            item = reader.pop()
            if item is None:
                data = conn.readline()
                if not data:
                    if b"mwi2" in done:
                        break  # closed after its BYE without LOGOUT's OK: the count is whole
                    raise imaplib.IMAP4.abort("connection closed by the server")
                reader.feed(data)
                continue
            if isinstance(item, Tagged):
                done[item.tag] = item
                continue
            if not isinstance(item, Untagged) or b"mwi1" not in done:
                continue
            fetched = fetch_items(item.tokens()) if b" FETCH " in item.raw[:24] else None
            if fetched is None:
                continue
            # A server may send a message's items in several FETCH responses (RFC 3501
            # 7.4.2): merged per message by UID (sequence numbers move when another
            # session expunges meanwhile, 7.4.1), the later flags winning. A response
            # without UID is an unsolicited flag change: the count's own responses have it.
            uid = fetched[1].get(b"UID")
            if isinstance(uid, bytes):
                messages.setdefault(uid, {}).update(fetched[1])
        examined = done.get(b"mwi1")
        if examined is None or examined.status != b"OK":
            why = describe(examined.text) if examined is not None else "no answer"
            raise CountError("folder", f"folder {s.folder!r} cannot be opened ({why}): it is "
                             f"created by the first voice deposit; check [mail] voice_folder")
        fetched_ok = done.get(b"mwi2")
        if fetched_ok is None or fetched_ok.status != b"OK":
            why = describe(fetched_ok.text) if fetched_ok is not None else "no answer"
            raise CountError("protocol", f"IMAP server {self.where}: UID FETCH of the header "
                             f"lines in {s.folder!r} refused ({why})")
        new = old = 0
        for items in messages.values():
            seen = _voice(items, key, recipient)
            if seen is not None:
                old, new = (old + 1, new) if seen else (old, new + 1)
        return counts(new, old)


_FIELDS = " ".join(FETCHED).encode("ascii")


def _voice(items: dict[bytes, object], key: bytes, recipient: str) -> bool | None:
    """None: does not count (\\Deleted, or not a sealed voice deposit to `recipient`);
    else whether it is seen."""
    flags = items.get(b"FLAGS")
    body = next((v for k, v in items.items() if k.startswith(b"BODY[")), None)
    if not isinstance(flags, list) or not isinstance(body, bytes):
        return None  # an unsolicited FETCH (a flag change by another session): not ours
    names = {f.lower() for f in flags if isinstance(f, bytes)}
    if b"\\deleted" in names or not counts_as_voice(body, key=key, recipient=recipient):
        return None
    return b"\\seen" in names
