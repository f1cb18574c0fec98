"""The text the phone reads for one message: bounded, clean, in its language.

Sans-I/O: the session fetches the chosen part (at most :data:`MAX_PART_BYTES`)
and hands the octets here. Whatever the input — a 1 MB body, 10,000 lines of
HTML, control and bidi characters, speech-like markup — the work is capped
(bytes read, HTML parsed, characters cleaned) and so is the output
(:data:`MAX_CHARS`). Everything from the sender goes through
:func:`mailcall.core.text.display_text` (``lines=True``): what reaches the speech
engine is plain text, one sentence block per line; ``<speak>`` in a plain-text
mail is just the characters ``<speak>``.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcall.core.text import display_text, truncate

from .fetch import to_text, transfer_decoded
from .html_text import html_to_text
from .language import guess_language
from .structure import Part
from .summary import MessageSummary
from .trim import new_text

MAX_CHARS = 20_000
"""Longest text returned (about 25 minutes of speech)."""
MAX_PART_BYTES = 512 * 1024
"""Octets of the body part fetched at most (encoded): enough for MAX_CHARS of new text."""
MAX_TEXT = 60_000
"""Characters of decoded text cleaned and trimmed at most."""
MAX_ATTACHMENTS = 20


@dataclass(frozen=True, slots=True)
class Attachment:
    name: str
    """Cleaned file name, "" when the part has none."""
    mime_type: str
    size: int
    """Encoded octets (about 4/3 of the file for base64)."""


@dataclass(frozen=True, slots=True)
class Readable:
    text: str
    """What to read aloud: lines separated by "\\n", at most MAX_CHARS characters."""
    language: str | None
    """Content-Language, else a guess between "fr" and "en", else None."""
    truncated: bool
    """Part of the body was not read (too long): the menu may say so."""
    attachments: tuple[Attachment, ...]


_WORDS = {
    "fr": {"voice": "Message vocal de {who}.", "fax": "Télécopie de {who}.",
           "unknown": "un numéro masqué", "attachment": "Pièce jointe : {what}.",
           "attachments_more": "Et {n} autres pièces jointes.", "empty": "Message sans texte.",
           "duration": "Durée : {seconds} secondes."},
    "en": {"voice": "Voice message from {who}.", "fax": "Fax from {who}.",
           "unknown": "a withheld number", "attachment": "Attachment: {what}.",
           "attachments_more": "And {n} more attachments.", "empty": "This message has no text.",
           "duration": "Length: {seconds} seconds."},
}
_TYPES = {
    "fr": {"application/pdf": "document PDF", "image": "image", "audio": "enregistrement audio",
           "video": "vidéo", "text/calendar": "invitation d'agenda", "message/rfc822":
           "message joint", "application/zip": "archive ZIP", "word": "document Word",
           "sheet": "tableur", "presentation": "présentation", "text": "texte"},
    "en": {"application/pdf": "PDF document", "image": "image", "audio": "audio recording",
           "video": "video", "text/calendar": "calendar invitation", "message/rfc822":
           "attached message", "application/zip": "ZIP archive", "word": "Word document",
           "sheet": "spreadsheet", "presentation": "presentation", "text": "text"},
}


def _words(language: str | None) -> str:
    return language if language in _WORDS else "en"


def type_words(mime_type: str, language: str | None) -> str:
    """A file type as a listener understands it ("PDF document", "image")."""
    table = _TYPES[_words(language)]
    if mime_type in table:
        return table[mime_type]
    sub = mime_type.split("/", 1)[-1]
    if "wordprocessing" in sub or sub in ("msword", "vnd.oasis.opendocument.text"):
        return table["word"]
    if "spreadsheet" in sub or sub in ("vnd.ms-excel", "csv"):
        return table["sheet"]
    if "presentation" in sub or sub == "vnd.ms-powerpoint":
        return table["presentation"]
    main = mime_type.split("/", 1)[0]
    return table.get(main, display_text(sub, 40) or mime_type)


def choose_body(parts: list[Part]) -> tuple[Part | None, list[Part]]:
    """(the part to read, the attachments): in each multipart/alternative the plain text
    when it has content, else the HTML; outside one, the first inline text part."""
    body: Part | None = None
    attachments: list[Part] = []
    groups: dict[str | None, list[Part]] = {}
    for part in parts:
        groups.setdefault(part.alternative, []).append(part)
    for part in parts:
        readable = part.mime_type in ("text/plain", "text/html") \
            and part.disposition != "attachment"
        if body is None and readable:
            if part.alternative is not None:
                siblings = groups[part.alternative]
                plain = [p for p in siblings if p.mime_type == "text/plain" and p.size > 2]
                html = [p for p in siblings if p.mime_type == "text/html"]
                body = (plain or html or [part])[0]
            else:
                body = part
            continue
        if part.alternative is not None and body is not None \
                and part.alternative == body.alternative:
            continue  # the same content in another form
        if readable and not part.filename:
            continue  # a second inline text (a footer the list server added): not a file
        attachments.append(part)
    return body, attachments


def body_text(data: bytes, part: Part, *, cut: bool) -> tuple[str, bool]:
    """The readable text of the fetched octets of `part` (HTML converted), and whether
    some was not read."""
    decoded = transfer_decoded(data, part.encoding)
    text = to_text(decoded, part.charset)
    if part.mime_type == "text/html":
        text, html_cut = html_to_text(text, MAX_TEXT)
        cut = cut or html_cut
    if len(text) > MAX_TEXT:
        text, cut = text[:MAX_TEXT], True
    return text, cut


def readable(message: MessageSummary, *, text: str, cut: bool, attachments: list[Part],
             language: str | None = None) -> Readable:
    """Assemble what is read: the announcement of a deposit, the new text of the body, then
    the attachments; `language` is the one of our own words (default: the message's)."""
    if len(text) > MAX_TEXT:
        text, cut = text[:MAX_TEXT], True
    cleaned = display_text(text, lines=True)
    spoken = new_text(cleaned)
    lang = message.language or guess_language(spoken)
    words = _WORDS[_words(language or lang)]
    lines: list[str] = []
    if message.kind in ("voice", "fax"):
        who = message.caller_name or message.caller_number or words["unknown"]
        lines.append(words[message.kind].format(who=who))
        if message.kind == "voice" and message.duration:
            lines.append(words["duration"].format(seconds=round(message.duration)))
    elif spoken:
        lines.append(spoken)
    else:
        lines.append(words["empty"])
    files = [Attachment(name=p.filename, mime_type=p.mime_type, size=p.size)
             for p in attachments]
    if message.kind != "mail":
        files = []  # a deposit's recording or PDF is what the announcement already says
    for a in files[:MAX_ATTACHMENTS]:
        what = type_words(a.mime_type, language or lang)
        lines.append(words["attachment"].format(what=f"{a.name}, {what}" if a.name else what))
    if len(files) > MAX_ATTACHMENTS:
        lines.append(words["attachments_more"].format(n=len(files) - MAX_ATTACHMENTS))
    out = "\n".join(lines)
    truncated = cut or len(out) > MAX_CHARS
    return Readable(text=truncate(out, MAX_CHARS), language=lang, truncated=truncated,
                    attachments=tuple(files))
