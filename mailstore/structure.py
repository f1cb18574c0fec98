"""A message's MIME parts as the server describes them (IMAP BODYSTRUCTURE), without its bytes.

Reading the structure first lets the phone menu fetch only what it speaks or
plays: the text part of a mail with a 20 MB attachment costs a few kilobytes,
and attachments are named from the structure alone. The parenthesised list
itself is parsed by IMAPClient's response parser (:mod:`imapclient.response_parser`),
which the lists reach through :func:`mailcall.mailstore.fetch.parse_fetch`;
this module only names the fields (RFC 3501 §7.4.2).
"""

from __future__ import annotations

import email.utils
from dataclasses import dataclass

from mailcall.core.text import display_text

from .fetch import header_words

MAX_PARTS = 200
"""Parts looked at in one message: a hostile structure of thousands of parts costs no more."""


@dataclass(frozen=True, slots=True)
class Part:
    number: str
    """The IMAP part specifier ("1", "2.1"): what ``BODY.PEEK[number]`` fetches."""
    mime_type: str
    """Lower case, e.g. "text/plain", "audio/ogg"."""
    params: dict[str, str]
    """Content-Type parameters, names lower case (charset, name, codecs...)."""
    encoding: str
    """Content-Transfer-Encoding, lower case ("base64", "quoted-printable", "7bit"...)."""
    size: int
    """Encoded size in octets, as the server counts it."""
    disposition: str
    """"attachment", "inline" or "" (none given)."""
    filename: str
    """Decoded and cleaned (display_text), "" when none."""
    alternative: str | None
    """The number of the multipart/alternative this part belongs to (its siblings are
    the same content in another form), None otherwise."""

    @property
    def maintype(self) -> str:
        return self.mime_type.split("/", 1)[0]

    @property
    def charset(self) -> str:
        return self.params.get("charset", "")


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, int):
        return str(value)
    return ""


def _pairs(value: object) -> dict[str, str]:
    """A ("name" "value" ...) parameter list as a dict; anything else gives {}."""
    if not isinstance(value, tuple | list):
        return {}
    out: dict[str, str] = {}
    items = list(value)
    for i in range(0, len(items) - 1, 2):
        key = _text(items[i]).lower()
        if key and key not in out:
            out[key] = _text(items[i + 1])
    return out


def _decoded_name(raw: str) -> str:
    """A filename as the sender wrote it: RFC 2231 (``filename*``) or RFC 2047 words undone,
    then made safe to speak (display_text)."""
    if not raw:
        return ""
    return display_text(header_words(raw), 120)


def _filename(params: dict[str, str], disposition: dict[str, str]) -> str:
    for source in (disposition, params):
        for key in ("filename", "name"):
            if key in source:
                return _decoded_name(source[key])
        # RFC 2231 forms the server passed through undecoded: filename*0*, filename*
        for key, value in source.items():
            if key.startswith(("filename*", "name*")):
                try:
                    decoded = email.utils.collapse_rfc2231_value(
                        email.utils.decode_rfc2231(value))
                except Exception:
                    decoded = value
                return _decoded_name(decoded)
    return ""


def _single(body: tuple, number: str, alternative: str | None) -> Part:
    maintype = _text(body[0]).lower() or "application"
    subtype = _text(body[1]).lower() or "octet-stream"
    params = _pairs(body[2]) if len(body) > 2 else {}
    encoding = _text(body[5]).lower() if len(body) > 5 else ""
    try:
        size = int(body[6]) if len(body) > 6 and body[6] is not None else 0
    except (TypeError, ValueError):
        size = 0
    # Extension data follows the basic fields: text/* has a line count first, message/rfc822
    # an envelope, a body and a line count (RFC 3501 body-type-text / body-type-msg).
    if maintype == "text":
        ext = 8
    elif (maintype, subtype) == ("message", "rfc822"):
        ext = 10
    else:
        ext = 7
    disposition_name = ""
    disposition_params: dict[str, str] = {}
    if len(body) > ext + 1:
        disp = body[ext + 1]
        if isinstance(disp, tuple | list) and disp:
            disposition_name = _text(disp[0]).lower()
            disposition_params = _pairs(disp[1]) if len(disp) > 1 else {}
    return Part(number=number, mime_type=f"{maintype}/{subtype}", params=params,
                encoding=encoding, size=max(size, 0), disposition=disposition_name,
                filename=_filename(params, disposition_params), alternative=alternative)


def parts(body: object) -> list[Part]:
    """Every leaf part of a BODYSTRUCTURE (imapclient ``BodyData``), in order, at most
    :data:`MAX_PARTS`; an attached message (message/rfc822) is one leaf."""
    out: list[Part] = []
    if not isinstance(body, tuple | list):
        return out
    stack: list[tuple[object, str, str | None, bool]] = [(body, "", None, True)]
    while stack and len(out) < MAX_PARTS:
        node, prefix, alternative, top = stack.pop()
        if not isinstance(node, tuple | list) or not node:
            continue
        if isinstance(node[0], list):  # multipart: ([part, part...], subtype, params...)
            children = [c for c in node[0] if isinstance(c, tuple | list)]
            subtype = _text(node[1]).lower() if len(node) > 1 else ""
            here = alternative
            if subtype == "alternative" and here is None:
                here = prefix or "0"
            for i in range(len(children), 0, -1):  # reversed: the stack pops the first first
                number = f"{prefix}.{i}" if prefix else str(i)
                stack.append((children[i - 1], number, here, False))
        else:
            out.append(_single(tuple(node), prefix or "1" if top else prefix, alternative))
    return out
