"""One call's IMAP connection, blocking: every operation the phone menu makes on a mailbox.

Used from one worker thread at a time (:mod:`mailcall.mailstore.store` sees to
that). Each method is a few commands on the connection opened for the call:
the folder is SELECTed once and kept while the call stays in it, and message
structures are remembered, so "next voicemail" costs one ``UID FETCH`` of the
audio part. Everything is read with ``BODY.PEEK``: only :meth:`mark_seen` sets
``\\Seen``. A delete is ``UID MOVE`` to Trash (RFC 6851) or, on servers without
MOVE (or an ACL without the expunge right), one copy in Trash then ``\\Deleted``
on the original and, with UIDPLUS, ``UID EXPUNGE`` of that one UID — never a
plain ``EXPUNGE``, which would take every message another client flagged: what
leaves a folder is already safe in Trash, and what is in Trash is left there.
"""

from __future__ import annotations

import imaplib
import logging
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mailcall.imap import describe, logout_quietly, quote

from .audio_part import audio_part, guess_audio_type
from .errors import MailboxUnavailable, MessageUnreadable
from .fetch import as_bytes, item, parse_fetch, to_text, transfer_decoded
from .imap_syntax import folder_arg, no_permission, trash_name, uid_set
from .readable import MAX_PART_BYTES, Readable, body_text, choose_body, readable
from .settings import MailstoreSettings
from .structure import Part, parts
from .summary import HEADERS, MessageSummary, UnreadMail, VoiceMail, parse_headers, summarise
from .trash_copies import Key, TrashCopies

log = logging.getLogger(__name__)

_UIDS = re.compile(rb"\d+")
DEPOSIT_TEXT_BYTES = 2048
"""Octets of a deposit's text part read for the caller line (it is a few hundred)."""
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PAGE_MIN = 10
"""Fewest voicemail candidates fetched at once after a first page that had unsealed ones."""


@dataclass(frozen=True, slots=True)
class _Listed:
    uid: int
    entry: dict[bytes, Any]
    headers: Any
    summary: MessageSummary


class Mailbox:
    """A logged-in connection for one user (see :class:`mailcall.mailstore.store.MailStore`)."""

    def __init__(self, conn: imaplib.IMAP4, settings: MailstoreSettings, *, login: str,
                 address: str, key: Callable[[], bytes],
                 copies: TrashCopies | None = None) -> None:
        self.conn = conn
        self.settings = settings
        self.login = login
        self.address = address
        self._key = key
        self._selected: str | None = None
        self._uidvalidity = 0
        self._structures: dict[tuple[str, int, int], list[Part]] = {}
        self._trash: str | None = None
        self._copies = copies if copies is not None else TrashCopies()
        """Originals copied to Trash and not yet flagged (the store's: it outlives this
        connection, which is closed when it fails between the COPY and the flag)."""
        self.capabilities = self._capabilities()

    # -- plumbing --------------------------------------------------------------------------

    def _where(self, what: str) -> str:
        return f"IMAP server {self.settings.where}, {self.login!r}: {what}"

    def _capabilities(self) -> frozenset[str]:
        typ, data = self.conn.capability()
        if typ != "OK":
            return frozenset()
        words = b" ".join(d for d in data if isinstance(d, bytes)).upper().split()
        return frozenset(w.decode("ascii", "replace") for w in words)

    def _check(self, typ: str, data: list, what: str) -> list:
        if typ != "OK":
            raise MailboxUnavailable("protocol", self._where(f"{what} refused: {describe(data)}"))
        return data

    def key(self) -> bytes:
        try:
            return self._key()
        except Exception as exc:  # DepositKeyError, OSError: its message says what to do
            raise MailboxUnavailable("key", f"cannot check which messages are mailcall's "
                                     f"deposits: {exc}") from None

    def select(self, folder: str) -> int | None:
        """The folder's UIDVALIDITY after SELECT, None when it does not exist."""
        if self._selected == folder:
            return self._uidvalidity
        try:
            typ, data = self.conn.select(folder_arg(folder))
        except imaplib.IMAP4.readonly:
            raise MailboxUnavailable("folder", self._where(
                f"folder {folder!r} is read-only for the master user "
                f"{self.settings.master_user!r}: grant it the rights docs/mailstore.md "
                f"lists (ACL)")) from None
        if typ != "OK":
            self._selected = None
            log.debug("SELECT %s for %s refused: %s", folder, self.login, describe(data))
            return None
        _name, values = self.conn.response("UIDVALIDITY")
        try:
            self._uidvalidity = int(values[0]) if values and values[0] else 0
        except (TypeError, ValueError):
            self._uidvalidity = 0
        self._selected = folder
        return self._uidvalidity

    def _select_for(self, message: MessageSummary) -> None:
        if self._selected == message.folder:
            # Another client may have expunged messages meanwhile; the server tells only
            # between commands, and until told it may still answer for them.
            self._check(*self.conn.noop(), "NOOP")
        uidvalidity = self.select(message.folder)
        if uidvalidity is None:
            raise MessageUnreadable(f"folder {message.folder!r} is gone")
        if uidvalidity != message.uidvalidity:
            raise MessageUnreadable(f"folder {message.folder!r} was rebuilt (UIDVALIDITY "
                                    f"{message.uidvalidity} → {uidvalidity}): list it again")

    def search(self, criteria: str) -> list[int]:
        typ, data = self.conn.uid("SEARCH", criteria)
        found: set[int] = set()
        for line in self._check(typ, data, f"SEARCH {criteria}"):
            if isinstance(line, bytes):
                found.update(int(u) for u in _UIDS.findall(line))
        return sorted(found)

    def fetch(self, uids: list[int], items: str) -> dict[int, dict[bytes, Any]]:
        if not uids:
            return {}
        typ, data = self.conn.uid("FETCH", uid_set(uids), items)
        return parse_fetch(self._check(typ, data, "FETCH"), set(uids))

    def _list_entries(self, folder: str, uidvalidity: int, uids: list[int],
                      key: bytes) -> list[_Listed]:
        """Summaries from the header lines alone (no BODYSTRUCTURE: parsing it for every
        listed mail was most of a list's time; it is fetched when a message is opened)."""
        fields = " ".join(HEADERS)
        entries = self.fetch(uids, f"(UID FLAGS INTERNALDATE RFC822.SIZE "
                                   f"BODY.PEEK[HEADER.FIELDS ({fields})])")
        out = []
        for uid, entry in entries.items():
            headers = parse_headers(as_bytes(item(entry, b"BODY[HEADER")))
            summary = self._summary(folder, uidvalidity, uid, entry, headers, key)
            out.append(_Listed(uid, entry, headers, summary))
        return out

    def _summary(self, folder: str, uidvalidity: int, uid: int, entry: dict, headers,
                 key: bytes, deposit_text: str | None = None,
                 duration: float | None = None) -> MessageSummary:
        received = entry.get(b"INTERNALDATE")
        if not isinstance(received, datetime):
            received = _EPOCH
        elif received.tzinfo is None:
            received = received.replace(tzinfo=UTC)
        size = entry.get(b"RFC822.SIZE")
        return summarise(uid=uid, folder=folder, uidvalidity=uidvalidity,
                         flags=tuple(entry.get(b"FLAGS") or ()), received=received,
                         size=size if isinstance(size, int) else 0, headers=headers, key=key,
                         recipient=self.address, deposit_text=deposit_text, duration=duration)

    def _with_deposit_details(self, folder: str, uidvalidity: int, listed: list[_Listed],
                              key: bytes) -> dict[int, MessageSummary]:
        """Caller number and name (the deposit's text part) and duration (the audio part's
        Content-Duration) of sealed deposits, in one FETCH of part headers: mailcall writes
        the text first and the audio second (deposit/voice_message.py). No BODYSTRUCTURE
        here (parsing it was most of a list's time); audio() and readable() fetch it."""
        if not listed:
            return {}
        details = self.fetch([one.uid for one in listed],
                             f"(UID BODY.PEEK[1.MIME] BODY.PEEK[1]<0.{DEPOSIT_TEXT_BYTES}> "
                             f"BODY.PEEK[2.MIME])")
        out: dict[int, MessageSummary] = {}
        for one in listed:
            entry = details.get(one.uid)
            if entry is None:
                continue  # expunged meanwhile
            first = parse_headers(as_bytes(item(entry, b"BODY[1.MIME]")))
            if not first.get("Content-Type"):
                first = one.headers  # a single-part deposit: its header is the message's
            text = None
            if (first.get_content_maintype() == "text"
                    and first.get_content_type() != "text/html"):
                raw = as_bytes(item(entry, b"BODY[1]"))
                encoding = str(first.get("Content-Transfer-Encoding") or "7bit").strip()
                text = to_text(transfer_decoded(raw, encoding),
                               str(first.get_content_charset() or "utf-8"))
            audio = parse_headers(as_bytes(item(entry, b"BODY[2.MIME]")))
            duration = _seconds(audio.get("Content-Duration")) \
                if audio.get_content_maintype() == "audio" else None
            out[one.uid] = self._summary(folder, uidvalidity, one.uid, one.entry, one.headers,
                                         key, text, duration)
        return out

    # -- the menu's operations -------------------------------------------------------------

    def voice_messages(self) -> list[MessageSummary]:
        return list(self.voice_listing().messages)

    def voice_listing(self, skip: frozenset[int] = frozenset()) -> VoiceMail:
        """New first, then saved, each in arrival order (UID order: RFC 3501 UIDs ascend as
        messages are added), at most ``max_listed``. Only that many candidates are fetched
        and seal-checked, a page at a time, so a folder of 2,000 costs what one of 50 does
        (fetching and checking every candidate was most of a call's login time).

        `skip`: UIDs an earlier page of this call examined (its ``examined``): the next
        page is the listing's continuation, without them. By UID, not by position: a
        message heard meanwhile is \\Seen now, and would otherwise come back as saved."""
        folder = self.settings.voice_folder
        uidvalidity = self.select(folder)
        if uidvalidity is None:  # created by the first voice deposit: no voicemail yet
            return VoiceMail((), complete=True, new_complete=True)
        key = self.key()
        voice = 'UNDELETED HEADER Message-Context "voice-message"'
        all_unseen = self.search(f"UNSEEN {voice}")
        new_uids = set(all_unseen)
        unseen = [uid for uid in all_unseen if uid not in skip]
        candidates = unseen + [uid for uid in self.search(f"SEEN {voice}")
                               if uid not in new_uids and uid not in skip]
        limit = self.settings.max_listed
        listed: list[_Listed] = []
        examined = 0
        while len(listed) < limit and examined < len(candidates):
            want = limit - len(listed)
            page = candidates[examined:examined + (want if not examined else max(want, PAGE_MIN))]
            examined += len(page)
            got = self._list_entries(folder, uidvalidity, page, key)
            listed += sorted((one for one in got if one.summary.kind == "voice"),
                             key=lambda one: (one.summary.seen, one.uid))
        listed, dropped = listed[:limit], listed[limit:]
        complete = examined >= len(candidates) and not dropped
        new_complete = complete or (examined >= len(unseen)
                                    and not any(not d.summary.seen for d in dropped))
        detailed = self._with_deposit_details(folder, uidvalidity, listed, key)
        messages = tuple(detailed[one.uid] for one in listed if one.uid in detailed)
        kept = {one.uid for one in dropped}  # examined but not listed: the next page's
        return VoiceMail(messages, complete=complete, new_complete=new_complete,
                         examined=tuple(u for u in candidates[:examined] if u not in kept))

    def unread_mail(self, before: int | None = None) -> UnreadMail:
        """The newest ``max_listed`` unseen mails, newest first; with `before`, the newest
        of those below that UID (the next page: older than the lowest listed so far)."""
        uidvalidity = self.select("INBOX")
        if uidvalidity is None:
            raise MailboxUnavailable("folder", self._where("the INBOX cannot be opened"))
        key = self.key()
        uids = self.search("UNSEEN UNDELETED")
        below = uids if before is None else [uid for uid in uids if uid < before]
        newest = below[-self.settings.max_listed:]
        listed = self._list_entries("INBOX", uidvalidity, newest, key)
        deposits = [one for one in listed if one.summary.kind != "mail"]
        detailed = self._with_deposit_details("INBOX", uidvalidity, deposits, key) \
            if deposits else {}
        messages = [detailed.get(one.uid, one.summary) for one in listed]
        messages.sort(key=lambda m: (m.received, m.uid), reverse=True)
        return UnreadMail(count=len(uids), messages=tuple(messages),
                          more=len(below) > len(newest))

    def _structure(self, message: MessageSummary) -> list[Part]:
        self._select_for(message)
        cache = (message.folder, message.uidvalidity, message.uid)
        if cache not in self._structures:
            entry = self.fetch([message.uid], "(UID BODYSTRUCTURE)").get(message.uid)
            if entry is None:
                raise MessageUnreadable(f"message {message.uid} of {message.folder!r} is gone")
            self._structures[cache] = parts(entry.get(b"BODYSTRUCTURE"))
        return self._structures[cache]

    def _part(self, message: MessageSummary, part: Part, limit: int | None) -> bytes:
        section = f"BODY.PEEK[{part.number}]" + (f"<0.{limit}>" if limit else "")
        entry = self.fetch([message.uid], f"(UID {section})").get(message.uid)
        if entry is None:
            raise MessageUnreadable(f"message {message.uid} of {message.folder!r} is gone")
        return as_bytes(item(entry, f"BODY[{part.number}]".encode()))

    def audio(self, message: MessageSummary) -> tuple[str, bytes]:
        part = audio_part(self._structure(message))
        if part is None:
            raise MessageUnreadable(f"message {message.uid} of {message.folder!r} has no "
                                    f"audio part")
        if part.size > self.settings.max_audio_bytes * 4 // 3 + 4096:
            raise MessageUnreadable(f"the audio of message {message.uid} is {part.size} "
                                    f"octets, more than max_audio_bytes")
        data = transfer_decoded(self._part(message, part, None), part.encoding)
        if not data:
            raise MessageUnreadable(f"the audio of message {message.uid} is empty")
        mime = part.mime_type
        if mime == "application/octet-stream":
            mime = guess_audio_type(part.filename)
        return mime, data

    def readable(self, message: MessageSummary, language: str | None = None) -> Readable:
        body, attachments = choose_body(self._structure(message))
        text, cut = "", False
        if body is not None:
            data = self._part(message, body, MAX_PART_BYTES)
            text, cut = body_text(data, body, cut=body.size > MAX_PART_BYTES)
        return readable(message, text=text, cut=cut, attachments=attachments,
                        language=language)

    def _exists(self, message: MessageSummary) -> None:
        self._select_for(message)
        if message.uid not in self.fetch([message.uid], "(UID FLAGS)"):
            raise MessageUnreadable(f"message {message.uid} of {message.folder!r} is gone")

    def set_seen(self, message: MessageSummary, seen: bool) -> None:
        self._exists(message)
        typ, data = self.conn.uid("STORE", str(message.uid),
                                  "+FLAGS.SILENT" if seen else "-FLAGS.SILENT", r"(\Seen)")
        self._check(typ, data, "STORE \\Seen")

    def set_answered(self, message: MessageSummary) -> bool:
        """Flag \\Answered, as a mail client does on the message it replied to. False when
        the server does not keep it: under an ACL without "w" Dovecot answers OK and drops
        the flag, so the flags are read back rather than trusting the OK."""
        self._exists(message)
        uid = str(message.uid)
        typ, data = self.conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Answered)")
        if typ != "OK":
            if no_permission(data):
                return False
            self._check(typ, data, "STORE \\Answered")
        entry = self.fetch([message.uid], "(UID FLAGS)").get(message.uid)
        if entry is None:
            raise MessageUnreadable(f"message {message.uid} of {message.folder!r} is gone")
        return any(f.lower() == b"\\answered" for f in entry.get(b"FLAGS") or ()
                   if isinstance(f, bytes))

    def trash_folder(self) -> str:
        """The folder flagged \\Trash (RFC 6154), else ``trash_folder``, created if missing."""
        if self._trash is not None:
            return self._trash
        special = "SPECIAL-USE" in self.capabilities
        typ, data = (self.conn.list('(SPECIAL-USE) ""', '"*"') if special
                     else self.conn.list('""', '"*"'))
        if typ == "OK":
            for line in data:
                name = trash_name(line)
                if name:
                    self._trash = name
                    return name
        name = self.settings.trash_folder
        typ, data = self.conn.list('""', folder_arg(name))
        if typ != "OK" or not any(line for line in data):
            typ, data = self.conn.create(folder_arg(name))
            if typ != "OK" and b"ALREADYEXISTS" not in b" ".join(
                    d for d in data if isinstance(d, bytes)).upper():
                raise MailboxUnavailable("folder", self._where(
                    f"cannot create the Trash folder {name!r} ({describe(data)}): create it, "
                    f"or give the master user the right to (docs/mailstore.md)"))
            log.info("created the Trash folder %r for %s", name, self.login)
        self._trash = name
        return name

    def move_to_trash(self, message: MessageSummary) -> None:
        trash = self.trash_folder()
        if message.folder == trash:
            return  # already in Trash: left there, never expunged
        self._exists(message)  # selects the folder, checks UIDVALIDITY and the message
        uid = str(message.uid)
        if "MOVE" in self.capabilities:
            typ, data = self.conn.uid("MOVE", uid, folder_arg(trash))
            if typ == "OK":
                self._forget(message)
                return
            if not no_permission(data):
                self._check(typ, data, f"MOVE to {trash!r}")
            # MOVE expunges from the source: refused when the ACL gives the master user no
            # expunge right ("e"), which is the least-privilege setup (docs/mailstore.md).
        self._copy_to_trash(message, trash)
        # Safe in Trash now: flagged here, and with UIDPLUS that one UID expunged (what MOVE
        # does); without it, left for the user's client to expunge.
        typ, data = self.conn.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
        self._check(typ, data, "STORE \\Deleted")
        self._copies.forget(self._copy_key(message))
        if "UIDPLUS" in self.capabilities:
            typ, data = self.conn.uid("EXPUNGE", uid)
            if typ != "OK":  # no expunge right ("e"): the \Deleted original stays, harmless
                log.debug("UID EXPUNGE %s in %s for %s refused: %s", uid, message.folder,
                          self.login, describe(data))
        self._forget(message)

    def _copy_to_trash(self, message: MessageSummary, trash: str) -> None:
        """One copy of `message` in Trash, never two. An earlier attempt may have copied it
        and stopped before flagging the original (a hang-up, a lost connection): in this
        process the store's memo knows that copy (kept across the failed session); else,
        when Trash is readable (`r`, not in the contrib ACL), it is found by Message-ID
        and size. Then the original is not copied again. Leaves its folder selected."""
        key = self._copy_key(message)
        if key in self._copies:
            log.info("message %s of %r for %s was copied to Trash (UID %s) by an attempt "
                     "cut before \\Deleted: not copied again", message.uid, message.folder,
                     self.login, self._copies.get(key))
        elif not self._in_trash(message, trash):
            self._select_for(message)
            self.conn.response("COPYUID")  # drop any answer left by an earlier COPY
            typ, data = self.conn.uid("COPY", str(message.uid), folder_arg(trash))
            self._check(typ, data, f"COPY to {trash!r}")
            _name, codes = self.conn.response("COPYUID")
            self._copies.remember(key, _copied_uid(codes))
        self._select_for(message)

    def _copy_key(self, message: MessageSummary) -> Key:
        return (self.login, message.folder, message.uidvalidity, message.uid)

    def _in_trash(self, message: MessageSummary, trash: str) -> bool:
        """Whether Trash holds an undeleted message with `message`'s Message-ID and size."""
        msgid = message.message_id
        if not msgid or not msgid.isascii() or self.select(trash) is None:
            return False  # no id to find it by: copied (a retry may then copy it twice)
        criteria = f"UNDELETED HEADER Message-ID {quote(msgid)}"
        if message.size:
            criteria += f" LARGER {message.size - 1} SMALLER {message.size + 1}"
        return bool(self.search(criteria))

    def _forget(self, message: MessageSummary) -> None:
        self._structures.pop((message.folder, message.uidvalidity, message.uid), None)

    def close(self) -> None:
        logout_quietly(self.conn)

    def abort(self) -> None:
        """Break the connection from another thread: a blocked read returns at once."""
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _copied_uid(codes: list) -> int | None:
    """The copy's UID from ``[COPYUID validity source copy]`` (RFC 4315), one message."""
    for code in codes or ():
        words = code.split() if isinstance(code, bytes) else []
        if len(words) == 3 and words[2].isdigit():
            return int(words[2])
    return None


def _seconds(value: object) -> float | None:
    try:
        seconds = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return seconds if 0 < seconds < 86400 else None
