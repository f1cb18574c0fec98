"""FETCH answers as plain values: keyed by UID, and part bytes decoded to text or audio.

imaplib hands back the raw response lines; IMAPClient's response parser
(:func:`imapclient.response_parser.parse_fetch_response`) turns them into
values. Entries are keyed by the UID *inside* each answer, and answers without
one (a flag change another client made, which the server may report at any
time) are dropped, so they can never be mistaken for the message asked about.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from email.header import decode_header
from typing import Any

from imapclient.response_parser import parse_fetch_response

from .errors import MailboxUnavailable

_NOT_BASE64 = re.compile(rb"[^A-Za-z0-9+/=]")


def parse_fetch(data: list, wanted: set[int] | None = None) -> dict[int, dict[bytes, Any]]:
    """{uid: {b"FLAGS": ..., b"BODY[1]<0>": ...}} of the answers that carry a UID (in `wanted`)."""
    try:
        parsed = parse_fetch_response(data, normalise_times=False, uid_is_key=False)
    except Exception as exc:  # imapclient.exceptions.ProtocolError, ValueError...
        raise MailboxUnavailable("protocol", f"unreadable FETCH answer from the IMAP server: "
                                 f"{type(exc).__name__}: {str(exc)[:200]}") from None
    out: dict[int, dict[bytes, Any]] = {}
    for item in parsed.values():
        uid = item.get(b"UID")
        if not isinstance(uid, int) or (wanted is not None and uid not in wanted):
            continue
        out.setdefault(uid, {}).update(item)
    return out


def item(entry: dict[bytes, Any], prefix: bytes) -> Any:
    """The value whose key starts with `prefix` (servers echo BODY[...] keys in their own case)."""
    prefix = prefix.upper()
    for key, value in entry.items():
        if key.upper().startswith(prefix):
            return value
    return None


def as_bytes(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "replace")
    return b""


def transfer_decoded(data: bytes, encoding: str) -> bytes:
    """The part's octets with its Content-Transfer-Encoding undone; a cut (partial fetch) or
    damaged encoding gives what could be decoded, never an exception."""
    encoding = encoding.lower()
    if encoding == "base64":
        clean = _NOT_BASE64.sub(b"", data)
        clean = clean[: len(clean) - len(clean) % 4]  # a partial fetch cuts anywhere
        try:
            return base64.b64decode(clean)
        except (binascii.Error, ValueError):
            return b""
    if encoding == "quoted-printable":
        try:
            return binascii.a2b_qp(data)
        except (binascii.Error, ValueError):
            return data
    return data


def to_text(data: bytes, charset: str) -> str:
    """Octets as text in `charset`; an unknown or non-text codec (``zlib``) reads as UTF-8."""
    name = (charset or "utf-8").strip().strip('"').lower() or "utf-8"
    try:
        info = codecs.lookup(name)
        if not getattr(info, "_is_text_encoding", True):
            raise LookupError(name)
        return data.decode(info.name, "replace")
    except (LookupError, TypeError, ValueError):
        return data.decode("utf-8", "replace")


def header_words(raw: str | None) -> str:
    """A header value with its RFC 2047 encoded words decoded, spacing kept as written
    (``make_header`` would put a space between a word and the text after it)."""
    if not raw:
        return ""
    if "=?" not in raw:
        return raw
    try:
        chunks = decode_header(raw)
    except Exception:  # malformed encoded words: the text as written
        return raw
    out = []
    for chunk, charset in chunks:
        out.append(to_text(chunk, charset or "utf-8") if isinstance(chunk, bytes) else chunk)
    return "".join(out)
