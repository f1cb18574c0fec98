"""The few words mailcall itself adds when it reads a mail aloud, per language.

A URL becomes "link to example.com", an address "jean dupont at example.com":
what a listener needs, in the voice's own language. Languages without an entry
use English words, as the rest of mailcall does.
"""

from __future__ import annotations

from typing import NamedTuple


class Words(NamedTuple):
    link_to: str        # "{host}" follows
    a_link: str
    at: str             # between the two halves of an address
    a_code: str         # a long token that is not a word (hash, base64, tracking id)
    a_long_number: str
    rest_not_read: str  # said when the text was cut


WORDS: dict[str, Words] = {
    "en": Words("link to", "a link", "at", "a code", "a long number",
                "The rest of this message is not read."),
    "fr": Words("lien vers", "un lien", "arobase", "un code", "un long nombre",
                "La suite de ce message n'est pas lue."),
    "de": Words("Link zu", "ein Link", "at", "ein Code", "eine lange Zahl",
                "Der Rest dieser Nachricht wird nicht vorgelesen."),
    "es": Words("enlace a", "un enlace", "arroba", "un código", "un número largo",
                "El resto de este mensaje no se lee."),
    "it": Words("link a", "un link", "chiocciola", "un codice", "un numero lungo",
                "Il resto di questo messaggio non viene letto."),
}


def words_for(language: str) -> Words:
    """The words for `language` ("fr-CA" uses French), English if none."""
    primary = language.lower().replace("_", "-").split("-", 1)[0]
    return WORDS.get(primary, WORDS["en"])
