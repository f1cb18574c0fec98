"""What the caller hears: stock prompts, numbers, generated phrases and spoken text.

Every prompt is played with every key as an escape digit (a key cuts what is
playing and is the caller's next input: :class:`~.errors.KeyPressed`), unless
the menu asked for a confirmation no key may cut. Asterisk's stock prompts
(``CHANNEL(language)``) are used where VoiceMailMain has them; the speech
engine says the rest: fixed phrases (agi/prompts.py ``MENU_TEXTS``) made once
per process, and text (envelopes, counts, mail bodies) sentence by sentence,
each sentence played as soon as it is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from mailcall.agi import prompts
from mailcall.agi.commands import Command, Quoted
from mailcall.agi.safety import safe_component
from mailcall.agi.session import AgiHangup

from . import words
from .errors import KeyPressed
from .scratch import reader_folder

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

ESCAPES = "0123456789*#"

FALLBACK: dict[str, tuple[str, ...]] = {
    "not_allowed": (prompts.SORRY, prompts.NOT_AVAILABLE),
    "unavailable": (prompts.SORRY, prompts.TRY_LATER),
    "cannot_play": (prompts.SORRY,),
    "not_yet": (prompts.NOT_AVAILABLE,),
    "no_reply": (prompts.SORRY,),
    "not_for_mail": (prompts.SORRY,),
    "reply_sent": (prompts.SAVED,),
    "not_sent": (prompts.SORRY,),
    "options_menu": (prompts.CHOOSE_GREETING,),
    "help_main": prompts.MENU_PHRASES["main_menu"],
    "help_message": prompts.MENU_PHRASES["message_menu"],
}
"""Stock prompts said instead of a generated phrase when no speech engine is installed."""


class Saying:
    def __init__(self, call: MenuCall) -> None:
        self.call = call
        self.session = call.session
        self.services = call.services
        self.quiet_since = asyncio.get_running_loop().time()
        """When the caller last heard something end (or typed): :meth:`quiet_now`."""
        self._heard: list[asyncio.Future[None]] = []

    def quiet_now(self) -> None:
        """The line is silent from now (a prompt ended, or the caller typed an entry)."""
        self.quiet_since = asyncio.get_running_loop().time()

    def next_sound_heard(self) -> asyncio.Future[None]:
        """Resolved once the next audio command has played to its end without a key;
        cancelled when a key or a hang-up cuts it. Work that must not compete with the
        caller's first sound (a fetch and decode), and is not wanted when the caller
        skips at once, starts then."""
        heard = asyncio.get_running_loop().create_future()
        self._heard.append(heard)
        return heard

    def _sending_audio(self) -> list[asyncio.Future[None]]:
        heard, self._heard = self._heard, []
        return heard

    @staticmethod
    def _played(heard: list[asyncio.Future[None]], through: bool) -> None:
        for future in heard:
            if through:
                _settle(future)
            elif not future.done():
                future.cancel()

    def no_audio_coming(self) -> None:
        """Nothing was played where a sound was expected (no speech engine): what waits
        for the next sound heard starts now."""
        self._played(self._sending_audio(), True)

    @property
    def language(self) -> str:
        return self.session.language or self.call.runtime.policy.organisation.language

    @property
    def words_lang(self) -> str:
        """The wording of mailcall's own sentences: "fr" or "en" (:func:`words.lang`)."""
        return words.lang(self.language)

    async def stream(self, name: str, *, cut: bool = True) -> None:
        """Play `name`; KeyPressed when a key cuts it (`cut` False: no key does)."""
        heard = self._sending_audio()
        through = False
        try:
            result = await self.session.stream_file(name, ESCAPES if cut else "")
            through = not result.digit
        finally:
            self.quiet_now()
            self._played(heard, through)
        if result.digit:
            raise KeyPressed(result.digit)

    async def stock(self, names: Sequence[str], *, cut: bool = True) -> None:
        for name in names:
            await self.stream(name, cut=cut)

    async def number(self, number: int, *, cut: bool = True) -> None:
        heard = self._sending_audio()
        code: int | None = -1
        try:
            reply = await self.session.run(Command(("SAY", "NUMBER", str(int(number)),
                                                    Quoted(ESCAPES if cut else ""))))
            code = reply.result_int
        finally:
            self.quiet_now()
            self._played(heard, not self.session.hungup and not code)
        if self.session.hungup or (code is not None and code < 0):
            raise AgiHangup("caller hung up during SAY NUMBER")
        if code:
            raise KeyPressed(chr(code))

    async def phrase(self, phrase: str) -> None:
        """A fixed generated phrase (agi/prompts.py MENU_TEXTS), made once per process."""
        names = await self._phrase_files(phrase)
        if names is None:
            await self.stock(FALLBACK.get(phrase, (prompts.SORRY,)))
            return
        for name in names:
            await self.stream(name)

    async def _phrase_files(self, phrase: str) -> list[str] | None:
        speaker = self.services.speaker
        texts = prompts.MENU_TEXTS.get(phrase)
        if speaker is None or texts is None:
            return None
        language = self.words_lang
        key = (phrase, language)
        cached = self.services.phrases.get(key)
        if cached is not None:
            return cached
        lock = self.services.phrase_locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self.services.phrases.get(key)
            if cached is not None:
                return cached
            folder = await asyncio.get_running_loop().run_in_executor(
                None, reader_folder,
                self.call.scratch.phrase_dir() / f"{safe_component(phrase)}-{language}")
            names: list[str] = []
            try:
                async with contextlib.aclosing(
                        speaker.speak(texts[language], language, folder)) as chunks:
                    async for chunk in chunks:
                        names.append(chunk.stream_name)
            except self.call.unavailable as exc:
                log.warning("phone menu: speaking the phrase %r failed (%s); saying stock "
                            "prompts instead", phrase, exc)
                return None
            self.services.phrases[key] = names
            return names

    async def text(self, sentences: Sequence[str], *, language: str | None = None,
                   whole: str | None = None, cut: bool = True, repeats: bool = False) -> bool:
        """Speak `sentences` (ours, in the caller's language) or the outside text `whole`
        (a mail body: its own language, guessed when unknown), sentence by sentence.
        `repeats`: ours and said alike in many calls (a count), so kept once spoken
        (the speaker's bounded cache, :mod:`mailcall.speech.cache`).

        True only when all of it was spoken: False with no speech engine, or when speech
        failed (then "sorry" was said), so that a mail is not marked heard for nothing."""
        speaker = self.services.speaker
        if speaker is None:
            return False
        folder = await self.call.scratch.folder()
        fallback = self.words_lang
        text = whole if whole is not None else " ".join(sentences)
        gen = speaker.speak(text, language or (fallback if whole is None else None), folder,
                            fallback=fallback, cache=repeats and whole is None)
        try:
            async with contextlib.aclosing(gen) as chunks:
                async for chunk in chunks:
                    await self.stream(chunk.stream_name, cut=cut)
        except self.call.unavailable as exc:
            log.warning("phone menu: speech failed for %s (%s)", self.call.who, exc)
            await self.stock((prompts.SORRY,))
            return False
        return True

    async def to_files(self, text: str) -> AsyncIterator[str]:
        """`text` (ours) spoken into this call's folder, not played: the stream name of
        each sentence as it is made (speech made ahead)."""
        speaker = self.services.speaker
        assert speaker is not None
        folder = await self.call.scratch.folder()
        async with contextlib.aclosing(speaker.speak(text, self.words_lang, folder,
                                                     fallback=self.words_lang)) as chunks:
            async for chunk in chunks:
                yield chunk.stream_name


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
