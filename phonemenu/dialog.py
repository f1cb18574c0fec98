"""Speaking and typing for the settings dialogs (PIN, absence): prompts out, digits in.

The dialogs themselves (:mod:`.pin_by_phone`, :mod:`.absence_by_phone`) are
sans-I/O tables; this carries out what they ask. A question is one GET DATA,
so every digit of an entry is read by Asterisk in one command: DTMF that
arrives between two AGI commands is dropped by res_agi, so reading an entry
key by key could lose digits. Its prompt is a stock prompt, or the last
sentence of a generated phrase (the sentences before it are played first; a
key cuts them and is the entry's first digit).

What comes back is digits only (``0-9``; ``*`` means the caller gave up):
nothing typed ever reaches a path, a command or a log line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from mailcall.agi import prompts

from .entry import DIGIT_WAIT_MS
from .errors import KeyPressed

if TYPE_CHECKING:
    from .call import MenuCall


DIALOG_TRIES = 3
"""Wrong entries in a row (silence, a refused entry) before a settings dialog ends with
"nothing was saved" (docs/phone-menu.md). Not the login's tries (entry.py), which lock out."""

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741
Table = Mapping[tuple[S, I], tuple[tuple[str, ...], S, bool]]
"""(step, what was typed) -> (phrases said, next step, whether it costs a try)."""


def table_step(table: Table[S, I], step: S, kind: I, tries: int
               ) -> tuple[list[Tell], S | None, int]:
    """One transition of a dialog's table: what is said, the next step (None: the caller
    used up :data:`DIALOG_TRIES` and "nothing_saved" ends what is said) and the tries.

    A right entry clears the wrong ones before it ("in a row"), unless a wrong entry at
    the next question leads back to this one: the PIN's first entry is right only once
    the second matches, so a caller typing two different PINs over and over still runs
    out of tries."""
    said, after, costs = table[(step, kind)]
    out = [Tell(p) for p in said]
    if costs:
        tries += 1
        if tries >= DIALOG_TRIES:
            return [*out, Tell("nothing_saved")], None, tries
    elif not any(back == step and cost for (at, _), (_, back, cost) in table.items()
                 if at == after):
        tries = 0
    return out, after, tries


@dataclass(frozen=True, slots=True)
class Tell:
    """A dialog's output: say this phrase (``words`` / ``agi.prompts`` name)."""

    phrase: str


@dataclass(frozen=True, slots=True)
class Ask:
    """A dialog's output: ask this question and read at most `max_digits` keys."""

    phrase: str
    max_digits: int


@dataclass(frozen=True, slots=True)
class Typed:
    """What the caller typed for one question."""

    digits: str = ""
    """Digits and ``*`` only, without the ending ``#``."""
    silent: bool = False
    """Nothing typed before the wait ran out (a lone ``#`` is not silence: it is "none")."""

    def __repr__(self) -> str:  # a PIN may be in it: never shown in a log or a traceback
        return f"Typed({len(self.digits)} characters, silent={self.silent})"


class NoSpeech(Exception):
    """A generated question cannot be said (no speech engine): the dialog cannot go on."""


async def tell(call: MenuCall, phrase: str) -> None:
    """Say `phrase`: stock prompts (``MENU_PHRASES``) or a generated one (``MENU_TEXTS``).

    What is said in a dialog is a refusal or a confirmation: a key cuts it and is
    dropped, never taken as the first digit of the next entry.
    """
    if phrase in prompts.MENU_PHRASES:
        await call.saying.stock(prompts.MENU_PHRASES[phrase], cut=False)
        return
    try:
        await call.saying.phrase(phrase)
    except KeyPressed:
        pass


async def tell_text(call: MenuCall, sentences: list[str]) -> None:
    """Say sentences made for this call (:mod:`.words`) in the caller's language."""
    await call.saying.text(sentences, cut=False)


async def ask(call: MenuCall, phrase: str, max_digits: int) -> Typed:
    """Say the question `phrase` and read the caller's entry (at most `max_digits`)."""
    if phrase in prompts.MENU_PHRASES:
        names = list(prompts.MENU_PHRASES[phrase])
    else:
        files = await call.saying._phrase_files(phrase)
        if not files:
            raise NoSpeech(phrase)
        names = files
    *lead, last = names
    first = ""
    try:
        for name in lead:
            await call.saying.stream(name)
    except KeyPressed as pressed:
        first = pressed.digit
    if first == "#":
        return Typed("")
    wanted = max_digits - len(first)
    more = ""
    timed_out = False
    if wanted > 0:
        result = await call.session.get_data(last, DIGIT_WAIT_MS, wanted)
        more, timed_out = result.digits, result.timeout
    typed = clean(first + more)
    return Typed(typed, silent=timed_out and not typed)


def clean(digits: str) -> str:
    """`digits` as a dialog reads them: up to the first ``#``, digits and ``*`` only."""
    head = digits.split("#", 1)[0]
    return "".join(ch for ch in head if ch in "0123456789*")


__all__ = ["DIALOG_TRIES", "NoSpeech", "Typed", "ask", "clean", "table_step", "tell",
           "tell_text"]
