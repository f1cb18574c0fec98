"""A cheap guess of a text's language, French or English, when the mail does not say.

Counting very common function words is enough to pick the voice between two
languages, costs microseconds, and needs no model: a library that knows a
hundred languages would be wasted on a choice of two. Too few clues, or a tie,
is no guess (None): the menu then uses the user's language.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[a-zàâçéèêëîïôûùüÿœ']+")
_FR = frozenset("""le la les un une des et est sont pas pour dans avec sur qui que
vous nous je tu il elle ce cette ces du au aux mais ou donc car ne bonjour merci
cordialement votre vos notre être avoir été fait très plus aussi comme c'est j'ai
n'est d'un d'une l'on qu'il""".split())
_EN = frozenset("""the a an and is are not for in with on who that you we i he she
it this these of to at but or so be have has been was were will would thanks
thank hello hi regards your our my please could should can just from""".split())

SAMPLE = 4000
"""Characters looked at: the start of a mail says its language."""


def guess_language(text: str) -> str | None:
    """"fr", "en" or None (fewer than 3 clues, or as many for each)."""
    fr = en = 0
    for word in _WORD.findall(text[:SAMPLE].lower()):
        if word in _FR:
            fr += 1
        if word in _EN:
            en += 1
    if fr + en < 3 or fr == en:
        return None
    return "fr" if fr > en else "en"
