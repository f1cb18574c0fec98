"""One message, as the caller hears it: its envelope, then its content.

For a voicemail the content is its audio, fetched once per call and decoded
to 8 kHz signed linear in the call's folder; for a mail, its text
(mailstore's ``readable``: HTML made text, quotes and signatures dropped)
read sentence by sentence in its own language, attachments announced first.
The fetch starts once the envelope's first sentence has played through (not
before: that first sound must not wait for a decode, and a caller who skips
during it, 6 6 6, costs no FETCH), so the audio is usually there when the
envelope ends. While a message plays, the
next one's envelope is spoken into files ahead (at most one) and, for
voicemail, its audio fetched and decoded, so "6" starts with a file already
made when the words are still the same.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mailcall.mailstore.errors import MailboxUnavailable

from . import words
from .errors import NoMailbox, NotPlayable
from .machine import MAIL, VOICE, AudioStarted, Key, PlaybackEnded, Present, Unplayable
from .mailbox import quiet

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

    from .call import MenuCall
    from .saying import Saying

log = logging.getLogger("mailcall.phonemenu")


class Presenter:
    def __init__(self, call: MenuCall) -> None:
        self.call = call
        self._envelopes: dict[str, Ahead] = {}
        """The next message's envelope, spoken ahead: its words -> its files."""
        self._audio: dict[int, asyncio.Future[str]] = {}
        """id(message) -> the decoded audio's stream name (fetched once per call)."""
        self._waiting: set[asyncio.Future[str]] = set()
        """Fetches waiting for the envelope's first sound to be heard, their IMAP work not
        begun (:meth:`audio_after_first_sound`): cancelled when the caller skips."""

    def envelope(self, folder: str, message: Any) -> list[str]:
        call = self.call
        menu = call.menu
        items = menu.items(folder) if menu is not None else [message]
        position = next((i for i, m in enumerate(items) if m is message), 0)
        total = len(items) if call.listing_complete(folder) else None
        now = call.runtime.now()
        lang = call.saying.words_lang
        if folder == VOICE:
            return words.voice_envelope(call.runtime.policy, message, position, total, now,
                                        lang)
        return words.mail_envelope(message, position, total, now, lang)

    async def present(self, effect: Present) -> Any:
        """Envelope, then content. The menu hears AudioStarted only just before the
        message's own audio or text starts: a key during the envelope, "one moment
        please" or an apology marks nothing (issue #12: no flag for a message not heard).
        """
        call = self.call
        message = effect.ref
        missed = effect.folder == VOICE and missed_call(message)
        if missed:
            fetch = None
        elif effect.folder == VOICE:
            fetch = self.audio_after_first_sound(message)
        else:
            fetch = asyncio.ensure_future(self._readable(message))
        try:
            await self.say_envelope(effect.folder, message)
        except BaseException:
            if fetch is not None:
                if fetch in self._waiting:  # its IMAP work not begun: the caller moved on
                    fetch.cancel()
                quiet(fetch)
            raise
        assert call.menu is not None
        call.saying.no_audio_coming()  # if the envelope made no sound, the fetch starts now
        self.prepare_next(effect)
        if fetch is None:  # a missed call: nothing to play, and hearing this is hearing it
            call.menu.feed(AudioStarted())
            await call.saying.phrase("missed_call")
            return PlaybackEnded()
        if effect.folder == MAIL and call.services.speaker is None:
            quiet(fetch)
            await call.saying.phrase("cannot_play")  # no speech engine: stock "sorry"
            return Unplayable()
        try:
            got = await call.mailbox.slow(fetch)
        except call.unreadable as exc:
            log.info("phone menu for %s: message %s cannot be played: %s", call.who,
                     message.uid, exc)
            await call.saying.phrase("cannot_play")
            return Unplayable()
        except call.unavailable as exc:
            call.mailbox.failed(exc)
            await call.saying.phrase("unavailable")
            return Unplayable()
        typed = call.mailbox.take_key()
        if typed is not None:  # it cut "one moment please": it acts, nothing was heard
            return Key(typed)
        call.menu.feed(AudioStarted())
        if effect.folder == VOICE:
            await call.saying.stream(got)
        else:
            # One announcement of the attachments: the readable's, in the caller's
            # language (asked of the store), at the end of the text.
            lang = got.language or message.language  # mailstore.Readable, MessageSummary
            if not await call.saying.text((), language=lang, whole=got.text):
                return Unplayable()  # nothing, or not all of it, was said: not heard
        return PlaybackEnded()

    async def say_envelope(self, folder: str, message: Any) -> None:
        """The envelope, from the speech made ahead while the previous message played
        (:meth:`prepare_next`) when its words are still the same — played as its sentences
        come, even if it is not finished — else spoken now."""
        sentences = self.envelope(folder, message)
        ahead = self._envelopes.pop(" ".join(sentences), None)
        if ahead is not None and await ahead.play(self.call.saying):
            return
        await self.call.saying.text(sentences)

    def prepare_next(self, effect: Present) -> None:
        """Speak the next message's envelope into files while this one plays: "6" then
        costs no synthesis, or only what is left of it. At most one made ahead; stale ones
        are dropped."""
        call = self.call
        menu = call.menu
        if call.services.speaker is None or menu is None or effect.position + 1 >= effect.total:
            return
        items = menu.items(effect.folder)
        if effect.position + 1 >= len(items):
            return
        upcoming = items[effect.position + 1]
        if effect.folder == VOICE and not missed_call(upcoming):
            self.audio_of(upcoming)  # fetched and decoded while this one plays, too
        text = " ".join(self.envelope(effect.folder, upcoming))
        if text in self._envelopes:
            return
        for stale in self._envelopes.values():
            stale.cancel()
        self._envelopes = {text: Ahead(call.saying, text)}

    async def _readable(self, message: Any) -> Any:
        # our own words (attachments, deposits announced) in the caller's language
        language = self.call.saying.words_lang
        return await self._on_session(lambda box: box.readable(message, language=language))

    async def _on_session(self, operation: Any) -> Any:
        """`operation(box)` on the call's session. When another operation (a page fetched
        in the background) broke that session while this one waited its turn, this one
        finds it closed: that failure was the other's, already handled, so this one runs
        once more on a new session instead of apologising for it."""
        mailbox = self.call.mailbox
        box = await mailbox.session(speak=False)
        if box is None:
            raise NoMailbox("no IMAP session for this call")
        try:
            return await operation(box)
        except self.call.unavailable as exc:
            closed = isinstance(exc, MailboxUnavailable) and exc.reason == "closed"
            if not closed or mailbox.box is box:
                raise  # its own failure (the store closed the session for it)
        box = await mailbox.session(speak=False)
        if box is None:
            raise NoMailbox("no IMAP session for this call")
        return await operation(box)

    def audio_after_first_sound(self, message: Any) -> asyncio.Future[str]:
        """:meth:`audio_of`, started once the next sound has played through, unless it was
        already started ahead (then it is that one). Cancelled with that sound when a key
        or a hang-up cuts it."""
        if id(message) in self._audio:
            return self.audio_of(message)
        heard = self.call.saying.next_sound_heard()

        async def later() -> str:
            await heard
            self._waiting.discard(task)  # its IMAP work begins
            return await self.audio_of(message)

        task = asyncio.ensure_future(later())
        self._waiting.add(task)
        task.add_done_callback(self._waiting.discard)
        return task

    def audio_of(self, message: Any) -> asyncio.Future[str]:
        """The message's audio decoded to a file Asterisk plays (fetched once per call)."""
        key = id(message)
        task = self._audio.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            task = asyncio.ensure_future(self._decode(message))
            self._audio[key] = task
        return task

    async def _decode(self, message: Any) -> str:
        call = self.call
        mime, data = await self._on_session(lambda box: box.audio(message))
        decode = call.services.decode
        if decode is None:
            raise NotPlayable("no audio decoder (mailcall.playback) loaded")
        folder = await call.scratch.folder()
        out = folder / f"vm-{call.scratch.next_number()}.sln"
        await asyncio.get_running_loop().run_in_executor(None, decode, data, mime, out)
        return str(out.with_suffix(""))

    def cancel(self) -> None:
        """At the end of the call: nothing made ahead or fetched is wanted any more."""
        for task in [*self._waiting, *self._audio.values()]:
            if not task.done():
                task.cancel()
            quiet(task)
        for ahead in self._envelopes.values():
            ahead.cancel()


def missed_call(message: MessageSummary) -> bool:
    """A voice deposit without a recording: a missed call (deposit/voice_message.py writes
    Content-Duration on every recording it attaches, so a proven deposit without a
    duration has no audio part)."""
    return message.duration is None


class Ahead:
    """Our own sentences spoken into files in the background, playable while being made."""

    def __init__(self, saying: Saying, text: str) -> None:
        self.names: list[str] = []
        self.finished = False
        self.failed = False
        self._more = asyncio.Event()
        self._task = asyncio.ensure_future(self._make(saying, text))

    async def _make(self, saying: Saying, text: str) -> None:
        try:
            async for name in saying.to_files(text):
                self.names.append(name)
                self._more.set()
        except Exception as exc:  # said again from the start by the caller of play()
            self.failed = True
            log.info("phone menu: an envelope spoken ahead failed (%s); spoken again", exc)
        finally:
            self.finished = True
            self._more.set()

    async def play(self, saying: Saying) -> bool:
        """Stream the sentences as they come; False when nothing could be played (then the
        caller speaks the text itself). A key raises KeyPressed, as any prompt does."""
        played = 0
        try:
            while True:
                if played < len(self.names):
                    await saying.stream(self.names[played])
                    played += 1
                    continue
                if self.finished:
                    return played > 0 or not self.failed
                self._more.clear()
                await self._more.wait()
        except BaseException:
            self.cancel()  # cut by a key or a hang-up: the rest is not wanted
            raise

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()
        quiet(self._task)
