"""What the phone menu knows of a message before playing or reading it, from its headers.

Built from fetched header lines (sans-I/O, so it is tested on bytes). Every
text field went through :func:`mailcall.core.text.display_text`: the sender
chooses these characters, and a CR/LF or a bidi override must not reach the
speech engine, a log line or the dialplan. The caller number of a deposit is
only the dialable characters (:func:`mailcall.deposit.headers.clean_number`).
"""

from __future__ import annotations

import email.utils
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from typing import Literal

from mailcall.core.text import display_text
from mailcall.deposit import wording
from mailcall.deposit.headers import clean_number
from mailcall.deposit.origin import FETCHED, deposit_kind

from .fetch import header_words

Kind = Literal["voice", "fax", "mail"]

HEADERS = ("From", "Reply-To", "Date", "Subject", "In-Reply-To", "References", "Content-Language",
           "Content-Type", "Content-Transfer-Encoding", *FETCHED)
"""The header lines fetched per listed message."""

_PARSER = BytesHeaderParser()
_MSGID = re.compile(r"<[^<>\s]{1,250}>")
_TEL = re.compile(r"<tel:([^;>\s]{1,64})[^>]{0,200}>")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?=$|[-_])")


@dataclass(frozen=True, slots=True)
class MessageSummary:
    uid: int
    folder: str
    """The IMAP folder ("Voicemail", "INBOX")."""
    uidvalidity: int
    """The folder's UIDVALIDITY when listed: an action refuses a message whose folder changed."""
    kind: Kind
    seen: bool
    date: datetime
    """When it was sent (Date header), aware; the arrival time when the header is unusable."""
    received: datetime
    """When the server got it (INTERNALDATE), aware: the order of the lists."""
    sender_name: str
    sender_address: str
    subject: str
    message_id: str | None
    in_reply_to: str | None
    references: tuple[str, ...]
    language: str | None
    """The Content-Language primary tag ("fr", "en"), lower case; None when absent."""
    caller_number: str | None
    """Voice and fax: the caller's dialable number as the deposit wrote it; None otherwise."""
    caller_name: str | None
    """Voice and fax: the caller's name as the deposit wrote it; None when there is none."""
    duration: float | None
    """Voice: seconds of audio (Content-Duration of the audio part); None otherwise."""
    size: int
    reply_to: str = ""
    """The one plain address of Reply-To, where a reply goes; "" when absent or not exactly
    one usable address (several, a group, a line break, no "@"): the reply then goes to
    `sender_address`."""


@dataclass(frozen=True, slots=True)
class UnreadMail:
    count: int
    """Every unseen, undeleted message of the inbox (messages holds at most max_listed)."""
    messages: tuple[MessageSummary, ...]
    more: bool = False
    """Older unseen mail than this page holds (below its lowest UID): the next page's."""


@dataclass(frozen=True, slots=True)
class VoiceMail:
    """The voice folder's proven deposits as listed: new first, then saved, at most
    max_listed. The counts of `messages` are exact only as far as the listing went: what
    was not examined may be forged (no seal), so it is never counted as voicemail."""

    messages: tuple[MessageSummary, ...]
    complete: bool
    """Every candidate was examined: the listing's new and saved counts are exact."""
    new_complete: bool
    """Every unseen candidate was examined (new ones are listed first): the new count is
    exact even when `complete` is False."""
    examined: tuple[int, ...] = ()
    """The UIDs this listing examined, listed or refused (no seal): what the next page
    skips (``voice_listing(skip=...)``)."""

    @property
    def new(self) -> int:
        return sum(1 for m in self.messages if not m.seen)

    @property
    def old(self) -> int:
        return len(self.messages) - self.new


def parse_headers(block: bytes) -> Message:
    return _PARSER.parsebytes(block)


def _decoded(value: object) -> str:
    return header_words(str(value)) if value else ""


def _sender(headers: Message) -> tuple[str, str]:
    values = headers.get_all("From") or []
    if not values:
        return "", ""
    try:
        name, address = email.utils.parseaddr(str(values[0]))
    except Exception:
        return display_text(_decoded(str(values[0])), 120), ""
    address = display_text(address, 254)
    if "@" not in address or " " in address:
        address = ""
    return display_text(_decoded(name), 120), address


def _reply_to(headers: Message) -> str:
    """Reply-To's address when the header is there once and names exactly one plain
    address; "" otherwise. Parsed with the email package (quoting, comments, groups),
    then checked like the From address: nothing the sender chose that a header, a log
    line or the SMTP envelope could not carry as is."""
    values = headers.get_all("Reply-To") or []
    if len(values) != 1:
        return ""
    raw = _FOLD.sub(" ", str(values[0]))  # a folded header is one line; a bare break is not
    if any(c in raw for c in "\r\n\0"):
        return ""
    try:
        found = email.utils.getaddresses([raw])
    except Exception:
        return ""
    if len(found) != 1:
        return ""
    address = found[0][1]
    if (not address or display_text(address, 254) != address or "@" not in address
            or not (address.isascii() and address.isprintable())
            or any(c in address for c in " <>,;\"\\")
            or address.startswith("@") or address.endswith("@")):
        return ""
    return address


def _date(headers: Message, received: datetime) -> datetime:
    raw = headers.get("Date")
    if not raw:
        return received
    try:
        when = email.utils.parsedate_to_datetime(str(raw))
    except (TypeError, ValueError, IndexError, OverflowError):
        return received
    if when is None:
        return received
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _message_id(value: object) -> str | None:
    match = _MSGID.search(str(value or ""))
    return display_text(match.group(0)) if match else None


def _references(value: object) -> tuple[str, ...]:
    return tuple(display_text(m) for m in _MSGID.findall(str(value or ""))[-20:])


def language_tag(value: object) -> str | None:
    """"fr" from "fr-CA, en"; None when absent or not a language tag."""
    first = str(value or "").split(",")[0].strip()
    match = _LANGUAGE.match(first)
    return match.group(0).lower() if match else None


def deposit_caller(text: str) -> tuple[str | None, str | None]:
    """(number, name) from the text part of a deposit (deposit/voice_message.py writes
    "Caller: Name (number)" or "Appelant : ..." and "Call back: <tel:number>")."""
    number = None
    match = _TEL.search(text)
    if match:
        number = clean_number(match.group(1)) or None
    name = None
    for line in text.splitlines()[:20]:
        for code in wording.LANGUAGES:
            prefix = wording.text(code, "caller", who="")
            if line.startswith(prefix):
                who = display_text(line[len(prefix):], 160)
                if number and who.endswith(f" ({number})"):
                    who = who[: -len(number) - 3].strip()
                unknown = {wording.text(c, "unknown_caller") for c in wording.LANGUAGES}
                if who and who != number and who not in unknown:
                    name = who
                break
        else:
            continue
        break
    return number, name


def summarise(*, uid: int, folder: str, uidvalidity: int, flags: tuple, received: datetime,
              size: int, headers: Message, key: bytes | None, recipient: str,
              deposit_text: str | None = None, duration: float | None = None) -> MessageSummary:
    """The summary of one message from its header lines; voice/fax only when sealed."""
    kind: Kind = deposit_kind(headers, key=key, recipient=recipient) or "mail"
    name, address = _sender(headers)
    number = caller = None
    if kind != "mail" and deposit_text is not None:
        number, caller = deposit_caller(deposit_text)
    seen = any(f.lower() == b"\\seen" for f in flags if isinstance(f, bytes))
    return MessageSummary(
        uid=uid, folder=folder, uidvalidity=uidvalidity, kind=kind, seen=seen,
        date=_date(headers, received), received=received, sender_name=name,
        sender_address=address, subject=display_text(_decoded(headers.get("Subject")), 300),
        message_id=_message_id(headers.get("Message-ID")),
        in_reply_to=_message_id(headers.get("In-Reply-To")),
        references=_references(headers.get("References")),
        language=language_tag(headers.get("Content-Language")),
        caller_number=number if kind != "mail" else None,
        caller_name=caller if kind != "mail" else None,
        duration=duration if kind == "voice" else None, size=size,
        reply_to=_reply_to(headers) if kind == "mail" else "")
