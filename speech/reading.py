"""Outside text made into short sentences a speech engine reads sensibly.

Everything here is about the listener: a 90-character tracking URL is "link
to example.com", a phone number is read in groups, a base64 blob is "a code",
"-----" is not read at all, and a 1 MB body is cut at a sentence with a
spoken note. The input is cleaned again with :func:`display_text` whatever
the caller did (control, bidi and format characters never reach the engine),
and every sentence is short so that 50 calls sharing one engine interleave
and the first one is ready in milliseconds.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from mailcall.core.text import display_text
from mailcall.speech.wording import Words, words_for

#: About 13 minutes at 150 words per minute: more is not listened to on a phone.
MAX_CHARS = 12_000
MAX_SENTENCE_CHARS = 240
_LONG_TOKEN = 40
_LONG_NUMBER = 20

_URL = re.compile(r"(?i)\b(?:(?:https?|ftp)://|www\.)[^\s<>\"']+")
_URL_TAIL = re.compile(r"[.,;:!?)\]}]+$")
_EMAIL = re.compile(
    r"(?i)(?:mailto:)?\b([a-z0-9._%+-]{1,64})@((?:[a-z0-9-]{1,63}\.)+[a-z]{2,63})\b")
# A phone number: an optional "+", then 7 or more digits in groups split by single
# spaces, dots or dashes ("+33 6 12 34 56 78", "06.12.34.56.78", "555-0123-4567").
_PHONE = re.compile(r"(?<![\w.,])(\+?\d{1,4}(?:[ .\-]\d{1,4}){2,7}|\+\d{7,15})(?!\w|[.,]\d)")
_DATE = re.compile(r"\d{1,4}[.\-]\d{1,2}[.\-]\d{1,4}")
_THOUSANDS = re.compile(r"\d{1,3}(?:[ .]\d{3})+")
_DIGITS = re.compile(r"(?<![\w.,])\d{5,}(?!\w|[.,]\d)")
_REPEATS = re.compile(r"([^\w\s])\1{2,}")
_TOKEN = re.compile(rf"\S{{{_LONG_TOKEN + 1},}}")
_HAS_WORD = re.compile(r"[^\W_]")
_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'»)\]]*\s+")
_BREAK = re.compile(r"[,;:]\s")

_ABBREVIATIONS = {
    "en": {"mr", "mrs", "ms", "dr", "prof", "st", "e.g", "i.e", "etc", "vs", "no", "inc",
           "ltd", "jr", "sr", "approx", "dept", "fig"},
    "fr": {"m", "mme", "mlle", "dr", "pr", "me", "mgr", "st", "ste", "etc", "cf", "p", "ex",
           "n°", "av", "bd", "tél", "tel", "env", "resp"},
}


def speakable_sentences(text: str, language: str, *, max_chars: int = MAX_CHARS) -> list[str]:
    """`text` as sentences to speak one by one in `language`, at most `max_chars` in all."""
    words = words_for(language)
    # Cut before cleaning so a 1 MB body costs what a 50 kB one does.
    raw = text[: max_chars * 4]
    clean = display_text(raw, lines=True)
    sentences: list[str] = []
    total = 0
    for line in clean.split("\n"):
        for sentence in _split(_spoken_form(line, words), language):
            total += len(sentence) + 1
            if total > max_chars:
                sentences.append(words.rest_not_read)
                return sentences
            sentences.append(sentence)
    if len(text) > len(raw):
        sentences.append(words.rest_not_read)
    return sentences


def _spoken_form(line: str, words: Words) -> str:
    line = _URL.sub(lambda m: _link(m.group(), words), line)
    line = _EMAIL.sub(lambda m: _address(m.group(1), m.group(2), words), line)
    line = _PHONE.sub(lambda m: _phone(m.group(), words), line)
    line = _DIGITS.sub(lambda m: _digit_run(m.group(), words), line)
    line = _REPEATS.sub(r"\1", line)
    line = _TOKEN.sub(words.a_code, line)
    return " ".join(line.split())


def _link(url: str, words: Words) -> str:
    """ "link to example.com", keeping the punctuation that followed the URL."""
    tail = _URL_TAIL.search(url)
    if tail:
        url, end = url[: tail.start()], tail.group()
    else:
        end = ""
    return f" {_site(url, words)}{end} "


def _site(url: str, words: Words) -> str:
    try:
        host = urlsplit(url if "://" in url else "http://" + url).hostname or ""
    except ValueError:
        host = ""
    host = host.removeprefix("www.")
    if not host or len(host) > _LONG_TOKEN or not re.fullmatch(r"[a-z0-9.-]+", host):
        return words.a_link
    return f"{words.link_to} {host}"


def _address(local: str, domain: str, words: Words) -> str:
    spoken = " ".join(re.split(r"[._%+-]+", local)).strip()
    if len(spoken) > _LONG_TOKEN or len(domain) > _LONG_TOKEN:
        return words.a_code
    return f"{spoken} {words.at} {domain}"


def _phone(number: str, words: Words) -> str:
    digits = re.sub(r"\D", "", number)
    if len(digits) < 7 or _DATE.fullmatch(number) or _THOUSANDS.fullmatch(number):
        return number  # a date, an amount, a short reference: the engine reads them well
    if len(digits) > _LONG_NUMBER:
        return words.a_long_number
    groups = re.findall(r"\d+", number)
    if len(groups) == 1:
        return "plus " + _grouped(digits)
    # The writer's own grouping, each group read digit by digit.
    spoken = ", ".join(" ".join(group) for group in groups)
    return ("plus " if number.startswith("+") else "") + spoken


def _digit_run(run: str, words: Words) -> str:
    if len(run) > _LONG_NUMBER:
        return words.a_long_number
    return _grouped(run)


def _grouped(digits: str) -> str:
    """Digits read one by one, a pause every two or three ("06 12 34" → "0 6, 1 2, 3 4")."""
    size = 2 if len(digits) % 3 == 1 or len(digits) == 10 else 3
    groups = [digits[i:i + size] for i in range(0, len(digits), size)]
    return ", ".join(" ".join(group) for group in groups)


def _split(line: str, language: str) -> list[str]:
    if not line:
        return []
    abbreviations = _ABBREVIATIONS.get(language.split("-", 1)[0].lower(), set())
    out: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(line):
        head = line[start:match.start()]
        last = head.rsplit(None, 1)[-1] if head.split() else ""
        word = last.rstrip(".").lower()
        if word in abbreviations or (len(word) == 1 and word.isalpha()):
            continue  # "M. Dupont", "J. Smith": not the end of a sentence
        out.extend(_bounded(line[start:match.start()]))
        start = match.end()
    out.extend(_bounded(line[start:]))
    return [s for s in out if _HAS_WORD.search(s)]


def _bounded(sentence: str) -> list[str]:
    """`sentence` in pieces of at most MAX_SENTENCE_CHARS, cut at a comma or a space."""
    sentence = sentence.strip()
    pieces: list[str] = []
    while len(sentence) > MAX_SENTENCE_CHARS:
        window = sentence[:MAX_SENTENCE_CHARS]
        cuts = [m.end() for m in _BREAK.finditer(window)]
        cut = cuts[-1] if cuts and cuts[-1] > MAX_SENTENCE_CHARS // 3 else window.rfind(" ") + 1
        if cut <= 0:
            cut = MAX_SENTENCE_CHARS
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    if sentence:
        pieces.append(sentence)
    return pieces
