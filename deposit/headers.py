"""Header helpers shared by voice and fax messages: the only door caller data goes through.

Caller ID names and fax station ids are chosen by whoever places the call. They
reach us as text that may hold CR/LF, NUL, invalid UTF-8 (smuggled in as
surrogate escapes) or kilobytes of junk. Everything that ends up in a header is
therefore (1) reduced to one printable line of bounded length by the project's
one rule (:func:`mailcall.core.text.display_text`), then (2) handed to the stdlib
``email`` header registry under a strict policy (:data:`STRICT`), which RFC
2047-encodes non-ASCII text and refuses CR/LF itself. Headers are never built
by string concatenation, so even if step (1) had a bug, step (2) raises instead
of injecting.

References: RFC 5322 (message format), RFC 2047 (encoded words), RFC 3458
(Message-Context), RFC 3803 (Content-Duration), RFC 3834 (Auto-Submitted),
RFC 3966 (tel: URIs); ``Mailcall-Deposit`` is mailcall's own (see seal.py).
"""

from __future__ import annotations

import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage

from mailcall.core.text import display_text, truncate

from .seal import SEAL_HEADER, deposit_token, id_digest

STRICT = email.policy.SMTP.clone(raise_on_defect=True, max_line_length=78, utf8=False)
"""CRLF line ends, 7-bit headers (non-ASCII becomes RFC 2047 encoded words), defects raise."""

MAX_NAME = 120
"""Longest caller name kept: enough for any real name, short enough for a subject line."""

_SPACES = re.compile(r"\s+")
_DIALABLE = re.compile(r"[^0-9+*#]")
_ID_SAFE = re.compile(r"[^A-Za-z0-9.\-]")
ID_PART_MAX = 40


def id_part(text: str) -> str:
    """`text` as a Message-ID or a spool id may hold it: letters, digits, dots and dashes,
    at most :data:`ID_PART_MAX` of them, so nothing a caller sent makes a header or a path."""
    return _ID_SAFE.sub("", text)[:ID_PART_MAX]


def header_text(value: str | bytes | None, limit: int = MAX_NAME) -> str:
    """:func:`~mailcall.core.text.display_text` for a header: also breaks "=?", so caller text
    that looks like an RFC 2047 encoded word is shown literally, not decoded by the client."""
    return truncate(display_text(value).replace("=?", "= ?"), limit)


_SPECIALS = re.compile(r'[()<>\[\]:;@\\,."]')


def display_name(value: str | bytes | None) -> str:
    """:func:`header_text` without RFC 5322 specials, for the phrase of an address.

    A phrase with specials must be quoted, and CPython's header folding drops
    those quotes when a long name is wrapped (``"A...A: x" <a@b>`` becomes a
    group, ``"A...A <evil@x>," <a@b>`` a second address). Without specials the
    phrase is plain atoms or encoded words, which fold safely anywhere.
    """
    return _SPACES.sub(" ", _SPECIALS.sub(" ", header_text(value))).strip()


def clean_number(value: str | bytes | None) -> str:
    """The dialable part of a caller number ("" when nothing dialable is left)."""
    text = display_text(value, 64)
    number = _DIALABLE.sub("", text)
    if "+" in number[1:]:
        number = number[0] + number[1:].replace("+", "")
    return number


def tel_uri(number: str, domain: str) -> str | None:
    """A tel: URI (RFC 3966): global for E.164, with a phone-context for internal numbers."""
    if not number:
        return None
    if number.startswith("+") and number[1:].isdigit():
        return f"tel:{number}"
    return f"tel:{number};phone-context={domain}"


def message_id(kind: str, mailbox: str, call_id: str, domain: str, *, key: bytes) -> str:
    """The stable Message-ID of a deposit: same call, kind and mailbox → same id.

    The readable part keeps the Asterisk unique id for grepping logs; the keyed
    hash (:func:`mailcall.deposit.seal.id_digest`) covers the exact original
    values, so two ids that clean to the same text still differ, and nobody
    without the deposit key can tell in advance the id of a voicemail to come.
    """
    readable = id_part(call_id) or "call"
    host = _ID_SAFE.sub("", domain) or "mailcall.invalid"
    return f"<{kind}.{readable}.{id_digest(key, kind, mailbox, call_id)}@{host}>"


def set_common_headers(
    msg: EmailMessage,
    *,
    context: str,
    subject: str,
    sender: str,
    sender_name: str,
    recipient: str,
    recipient_name: str,
    msgid: str,
    date,
    key: bytes,
) -> None:
    """Headers every deposit message carries, set through the header registry only.

    ``Mailcall-Deposit`` is the token that proves the message is mailcall's own
    (:mod:`mailcall.deposit.seal`): bound to the Message-ID, the envelope
    recipient and the context, so it cannot be moved to another message or user.
    """
    msg["Message-ID"] = msgid
    msg["Date"] = date
    msg["From"] = Address(display_name=display_name(sender_name), addr_spec=sender)
    msg["To"] = Address(display_name=display_name(recipient_name), addr_spec=recipient)
    msg["Subject"] = header_text(subject, limit=200)
    msg["Message-Context"] = context
    msg["Auto-Submitted"] = "auto-generated"
    msg[SEAL_HEADER] = deposit_token(key, msgid, recipient, context)


def serialise(msg: EmailMessage) -> bytes:
    """The wire form (CRLF, 7-bit), raising rather than emitting anything malformed."""
    return msg.as_bytes(policy=STRICT)
