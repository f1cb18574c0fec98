"""A cheap guess of a mail's language, for choosing the voice when the mail says nothing.

Most mail carries no Content-Language; reading French with an English voice
is unintelligible. Counting a few very common function words is enough to
tell the languages voices exist for apart on a mail body, costs microseconds
and needs no model.
"""

from __future__ import annotations

import re

_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the and you that is are for with this have not your will be "
                    "from was please thanks would can".split()),
    "fr": frozenset("le la les et vous que est des pour une dans pas sur avec ce "
                    "nous je merci bonjour du au".split()),
    "de": frozenset("der die das und sie ist nicht mit ich ein eine zu den für "
                    "auf bitte danke wir".split()),
    "es": frozenset("el los las y que es por una con para del no se su gracias "
                    "hola usted".split()),
    "it": frozenset("il che di è per una con non sono della grazie gli le ciao "
                    "questo".split()),
}
_WORD = re.compile(r"[^\W\d_]+")
#: Words looked at: a few hundred are plenty, and the cost stays bounded on a 1 MB body.
_SAMPLE = 400


def guess_language(text: str, default: str) -> str:
    """The language `text` seems written in ("fr", "en", "de", "es", "it"), else `default`."""
    counts = dict.fromkeys(_STOPWORDS, 0)
    for n, match in enumerate(_WORD.finditer(text[:8000])):
        if n >= _SAMPLE:
            break
        word = match.group().lower()
        for language, words in _STOPWORDS.items():
            if word in words:
                counts[language] += 1
    ranked = sorted(counts.items(), key=lambda item: item[1], reverse=True)
    (best, top), (_, second) = ranked[0], ranked[1]
    # Two hits at least, and clearly ahead: a short text or a mix keeps the default.
    if top >= 2 and top >= 1.5 * second + 1:
        return best
    return default
