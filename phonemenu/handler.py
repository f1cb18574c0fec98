"""``agi://host/mailbox[,ask]``: an employee calls in and hears their voicemail and e-mail.

The handler is the I/O half of :mod:`.machine`: it logs the caller in
(:mod:`.entry`), opens one IMAP session for the call (mailcall.mailstore),
feeds the menu what happens on the line and carries out what the menu asks,
with the AGI commands of :class:`~mailcall.agi.session.AgiSession`: STREAM
FILE with every key as an escape digit (a key cuts the prompt playing, and
is the next input), WAIT FOR DIGIT after a menu, GET DATA for numbers,
RECORD FILE for replies, prefaces and greetings, EXEC Dial to call back.

Faults: every mailbox operation is bounded by the store's own timeout (1.5 s
by default); one still running after ``SLOW_S`` gets "one moment please"
said over the wait, and a failure an apology, after which the menu goes on
(no silence longer than about 3 s anywhere: menus wait ``MENU_WAIT_MS`` and
are said again). A message that cannot be fetched or decoded is announced
as such and the next one follows. A hang-up at any point stops everything:
only messages whose audio was heard were marked, only a delete confirmed by
the key moved anything, and the call's scratch folder is removed.

What is said comes from the caller's language: Asterisk's stock prompts
(``CHANNEL(language)``) where VoiceMailMain has them, the speech engine
otherwise (agi/prompts.py ``MENU_TEXTS``, envelopes, mail bodies).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailcall.agi import prompts
from mailcall.agi.commands import Command, Quoted, wait_for_digit
from mailcall.agi.driver import inline
from mailcall.agi.folders import TRAVERSE_DIR_MODE
from mailcall.agi.pin_guard import PinGuard
from mailcall.agi.safety import safe_component
from mailcall.agi.session import AgiHangup, AgiSession
from mailcall.core.policy.numbers import language_of

from . import actions, words
from .entry import login
from .machine import (
    MAIL,
    VOICE,
    Act,
    AudioStarted,
    End,
    Greeting,
    Hangup,
    Key,
    Menu,
    PlaybackEnded,
    Present,
    Say,
    Timeout,
    Unplayable,
)
from .ports import Decoder, MailStore, Speaker

log = logging.getLogger("mailcall.phonemenu")

ESCAPES = "0123456789*#"
MENU_WAIT_MS = 2500
SLOW_S = 1.0
"""A mailbox operation still running after this gets "one moment please" said."""

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


@dataclass
class Services:
    """What one server process shares between menu calls (built by plugins/phonemenu.py)."""

    store: MailStore | None
    speaker: Speaker | None
    decode: Decoder | None
    guard: PinGuard
    unavailable: tuple[type[BaseException], ...]
    """The store's MailboxUnavailable (and speech errors that mean "cannot say it")."""
    unreadable: tuple[type[BaseException], ...]
    """MessageUnreadable and UnplayableAudio: this one message cannot be played."""
    phrases: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """Generated fixed phrases, made once per process: (phrase, language) -> stream names."""
    phrase_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)


class NoMailbox(Exception):
    """The call has no IMAP session and could not open one (already said and logged)."""


class NotPlayable(Exception):
    """This message cannot be played here (no decoder loaded)."""


class KeyPressed(Exception):
    """Not an error: a key cut what was playing; it is the caller's next input."""

    def __init__(self, digit: str) -> None:
        super().__init__(digit)
        self.digit = digit


def make_handler(services: Services) -> Callable[[AgiSession, Any], Awaitable[str]]:
    @inline
    def mailbox(session: AgiSession, runtime: Any) -> Awaitable[str]:
        return handler(session, runtime, services)

    return mailbox


async def handler(session: AgiSession, runtime: Any, services: Services) -> str:
    from .entry import bound_user

    env = session.env
    policy = runtime.policy
    # First, before anything acts on the call: the language of the phone's user, if any.
    await session.set_language(language_of(policy, bound_user(policy, env)))
    call = MenuCall(session, runtime, services)
    try:
        await session.answer()
        user_id, outcome = await login(session, runtime, services.guard)
        if user_id is None:
            await call.say_stock((prompts.GOODBYE,))
            await session.set_status("AUTH_FAILED")
            return outcome
        user = policy.users[user_id]
        call.user = user
        if not user.features.mailbox_by_phone:
            log.info("mailbox by phone refused for %s: profile %r does not grant "
                     "mailbox_by_phone", user.id, user.profile)
            await call.say_phrase("not_allowed")
            await call.say_stock((prompts.GOODBYE,))
            await session.set_status("NOT_ALLOWED")
            return "NOT_ALLOWED"
        await call.run()
        await session.set_status("MAILBOX_DONE")
        return "MAILBOX_DONE"
    except AgiHangup:
        if call.menu is not None:
            call.menu.feed(Hangup())
        await session.set_status("MAILBOX_DONE")
        return "CALLER_HUNGUP"
    finally:
        await call.close()


class MenuCall:
    """One call's menu: the machine, the IMAP session, the scratch folder."""

    def __init__(self, session: AgiSession, runtime: Any, services: Services) -> None:
        self.session = session
        self.runtime = runtime
        self.services = services
        self.user: Any = None
        self.menu: Menu | None = None
        self.box: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()
        self._envelopes: dict[str, asyncio.Future[list[str]]] = {}
        """The next message's envelope, spoken ahead: its words -> its files."""
        self._folder: Path | None = None
        self._audio: dict[int, asyncio.Future[str]] = {}
        """id(message) -> the decoded audio's stream name (fetched once per call)."""
        self._n = 0
        self.mail_count = 0
        self.unavailable: tuple[type[BaseException], ...] = (*services.unavailable, NoMailbox)
        self.unreadable: tuple[type[BaseException], ...] = (*services.unreadable, NotPlayable)

    # ------------------------------------------------------------ the loop

    @property
    def language(self) -> str:
        return self.session.language or self.runtime.policy.organisation.language

    async def run(self) -> None:
        await self.open_box()
        voice, mail = await self.load()
        self.menu = menu = Menu(voice=voice, mail=mail)
        effects = menu.start()
        while True:
            event = await self.carry_out(effects)  # the goodbye too, once the menu is done
            if menu.done:
                return
            if event is None:
                event = await self.wait_key()
            effects = menu.feed(event)

    async def carry_out(self, effects: Sequence[Any]) -> Any:
        """Do `effects` in order; the event a key or a message's end makes, else None."""
        for effect in effects:
            try:
                event = await self.effect(effect)
            except KeyPressed as pressed:
                return Key(pressed.digit)
            if event is not None:
                return event
        return None

    async def wait_key(self) -> Key | Timeout:
        reply = await self.session.run(wait_for_digit(MENU_WAIT_MS))
        code = reply.result_int
        if code is None or code < 0 or self.session.hungup:
            raise AgiHangup("caller hung up while the menu waited for a key")
        return Key(chr(code)) if code > 0 else Timeout()

    async def effect(self, effect: Any) -> Any:
        if isinstance(effect, Say):
            await self.say(effect)
            return None
        if isinstance(effect, Present):
            return await self.present(effect)
        if isinstance(effect, Act):
            await self.act(effect)
            return None
        if isinstance(effect, Greeting):
            await actions.record_greeting(self, effect.kind)
            return None
        if isinstance(effect, End):
            return None
        raise AssertionError(f"unknown effect {effect!r}")

    # ------------------------------------------------------------ saying

    async def stream(self, name: str, *, cut: bool = True) -> None:
        """Play `name`; KeyPressed when a key cuts it (`cut` False: no key does)."""
        result = await self.session.stream_file(name, ESCAPES if cut else "")
        if result.digit:
            raise KeyPressed(result.digit)

    async def say_stock(self, names: Sequence[str], *, cut: bool = True) -> None:
        for name in names:
            await self.stream(name, cut=cut)

    async def say_number(self, number: int, *, cut: bool = True) -> None:
        reply = await self.session.run(Command(("SAY", "NUMBER", str(int(number)),
                                                Quoted(ESCAPES if cut else ""))))
        code = reply.result_int
        if self.session.hungup or (code is not None and code < 0):
            raise AgiHangup("caller hung up during SAY NUMBER")
        if code:
            raise KeyPressed(chr(code))

    async def say(self, effect: Say) -> None:
        phrase = effect.phrase
        if phrase in prompts.MENU_PHRASES:
            await self.say_stock(prompts.MENU_PHRASES[phrase], cut=effect.cut)
        elif phrase == "counts" or phrase == "folder_voice" or phrase == "folder_mail":
            if effect.folder == VOICE:
                await self.say_voice_counts(cut=effect.cut)
            else:
                await self.say_text([words.mail_count(self.mail_count, self._words_lang)],
                                    cut=effect.cut)
        elif phrase == "empty_folder":
            if effect.folder == VOICE:
                await self.say_stock((prompts.YOU_HAVE, prompts.NO, prompts.MESSAGES))
            else:
                await self.say_text([words.mail_count(0, self._words_lang)])
        else:
            await self.say_phrase(phrase)

    @property
    def _words_lang(self) -> str:
        return words.lang(self.language)

    async def say_voice_counts(self, *, cut: bool = True) -> None:
        items = self.menu.voice if self.menu is not None else []
        new = sum(1 for m in items if not getattr(m, "seen", False))
        old = len(items) - new
        if not items:
            await self.say_stock((prompts.YOU_HAVE, prompts.NO, prompts.MESSAGES), cut=cut)
            return
        await self.stream(prompts.YOU_HAVE, cut=cut)
        if new:
            await self.say_number(new, cut=cut)
            await self.say_stock((prompts.NEW, prompts.MESSAGE if new == 1 else prompts.MESSAGES),
                                 cut=cut)
        if new and old:
            await self.stream(prompts.AND, cut=cut)
        if old:
            await self.say_number(old, cut=cut)
            await self.say_stock((prompts.OLD, prompts.MESSAGE if old == 1 else prompts.MESSAGES),
                                 cut=cut)

    async def say_phrase(self, phrase: str) -> None:
        """A fixed generated phrase (agi/prompts.py MENU_TEXTS), made once per process."""
        names = await self._phrase_files(phrase)
        if names is None:
            await self.say_stock(FALLBACK.get(phrase, (prompts.SORRY,)))
            return
        for name in names:
            await self.stream(name)

    async def _phrase_files(self, phrase: str) -> list[str] | None:
        speaker = self.services.speaker
        texts = prompts.MENU_TEXTS.get(phrase)
        if speaker is None or texts is None:
            return None
        language = self._words_lang
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
                None, reader_folder, self.phrase_dir() / f"{safe_component(phrase)}-{language}")
            names: list[str] = []
            try:
                async with contextlib.aclosing(
                        speaker.speak(texts[language], language, folder)) as chunks:
                    async for chunk in chunks:
                        names.append(chunk.stream_name)
            except self.unavailable as exc:
                log.warning("phone menu: speaking the phrase %r failed (%s); saying stock "
                            "prompts instead", phrase, exc)
                return None
            self.services.phrases[key] = names
            return names

    def phrase_dir(self) -> Path:
        return Path(self.runtime.setting("spool_dir")) / "menu" / "phrases"

    async def say_text(self, sentences: Sequence[str], *, language: str | None = None,
                       whole: str | None = None, cut: bool = True) -> None:
        """Speak `sentences` (ours, in the caller's language) or the outside text `whole`
        (a mail body: its own language, guessed when unknown), sentence by sentence."""
        speaker = self.services.speaker
        if speaker is None:
            return
        folder = await self.scratch()
        fallback = self._words_lang
        text = whole if whole is not None else " ".join(sentences)
        gen = speaker.speak(text, language or (fallback if whole is None else None), folder,
                            fallback=fallback)
        try:
            async with contextlib.aclosing(gen) as chunks:
                async for chunk in chunks:
                    await self.stream(chunk.stream_name, cut=cut)
        except self.unavailable as exc:
            log.warning("phone menu: speech failed for %s (%s)", self.user.id if self.user
                        else "?", exc)
            await self.say_stock((prompts.SORRY,))

    # ------------------------------------------------------------ the mailbox

    async def open_box(self, *, speak: bool = True) -> bool:
        """The call's IMAP session, opened again after a failure; False when it cannot be
        (the apology said, unless `speak` is False: a background fetch never speaks, the
        part of the menu waiting for it does)."""
        async with self._opening:  # a fetch in the background and the menu: one session
            return await self._open_box(speak)

    async def _open_box(self, speak: bool) -> bool:
        if self.box is not None:
            return True
        store = self.services.store
        if store is None:
            log.error("phone menu for %s: no mail store configured (docs/phone-menu.md, "
                      "phone-menu.toml); the caller hears an apology", self.user.id)
            if speak:
                await self.say_phrase("unavailable")
            return False
        task = asyncio.ensure_future(self._stack.enter_async_context(
            store.session(self.user.email, address=self.user.email)))
        try:
            self.box = await (self.slow(task) if speak else task)
        except self.unavailable as exc:
            log.warning("phone menu for %s: mailbox unreachable: %s", self.user.id, exc)
            if speak:
                await self.say_phrase("unavailable")
            return False
        return True

    def box_failed(self, exc: BaseException) -> None:
        log.warning("phone menu for %s: mailbox operation failed: %s", self.user.id, exc)
        self.box = None  # the store closed that session; the next operation opens another

    async def load(self) -> tuple[list[Any], list[Any]]:
        if self.box is None:
            return [], []
        try:
            voice = await self.slow(asyncio.ensure_future(self.box.voice_messages()))
            mail = await self.slow(asyncio.ensure_future(self.box.unread_mail()))
        except self.unavailable as exc:
            self.box_failed(exc)
            await self.say_phrase("unavailable")
            return [], []
        self.mail_count = int(getattr(mail, "count", len(mail.messages)))
        return list(voice), list(mail.messages)

    async def slow(self, task: asyncio.Future[Any]) -> Any:
        """`task`'s result; "one moment please" is said if it takes longer than SLOW_S.

        A key pressed during that prompt is not lost: it is the caller's next input
        once the result is in (KeyPressed after the task finished).
        """
        done, _ = await asyncio.wait({task}, timeout=SLOW_S)
        if not done:
            pressed: KeyPressed | None = None
            try:
                await self.stream(prompts.ONE_MOMENT)
            except KeyPressed as exc:
                pressed = exc
            except BaseException:
                _quiet(task)
                raise
            try:
                result = await task
            finally:
                if pressed is not None and task.done() and not task.cancelled() \
                        and task.exception() is None:
                    raise pressed
            return result
        return task.result()

    async def change(self, what: str, folder: str, message: Any) -> bool:
        """Mark seen or move to Trash, and tell the lamp; False (apology said) on failure."""
        if self.box is None and not await self.open_box():
            return False
        operation = self.box.move_to_trash if what == "trash" else self.box.mark_seen
        try:
            await self.slow(asyncio.ensure_future(operation(message)))
        except self.unreadable as exc:
            log.info("phone menu for %s: %s of a message skipped: %s", self.user.id, what, exc)
            return False
        except self.unavailable as exc:
            self.box_failed(exc)
            await self.say_phrase("unavailable")
            return False
        if folder == VOICE:
            reason = {"trash": "deleted", "save": "saved"}.get(what, "heard")
            try:
                self.runtime.pm.hook.mailcall_mailbox_changed(
                    runtime=self.runtime, user=self.user.id,
                    folder=getattr(message, "folder", ""), reason=reason)
            except Exception:
                log.exception("a mailcall_mailbox_changed hook failed after %s (%s); the "
                              "change stands", reason, self.user.id)
        return True

    async def act(self, effect: Act) -> None:
        if effect.what in ("seen", "save", "trash"):
            await self.change(effect.what, effect.folder, effect.ref)
        elif effect.what == "envelope":
            await self.say_text(self.envelope(effect.folder, effect.ref))
        elif effect.what == "reply":
            await actions.reply(self, effect.folder, effect.ref)
        elif effect.what == "call_back":
            await actions.call_back(self, effect.folder, effect.ref)
        elif effect.what == "forward":
            await actions.forward(self, effect.folder, effect.ref)

    # ------------------------------------------------------------ messages

    def envelope(self, folder: str, message: Any) -> list[str]:
        menu = self.menu
        items = menu.items(folder) if menu is not None else [message]
        position = next((i for i, m in enumerate(items) if m is message), 0)
        now = self.runtime.now()
        if folder == VOICE:
            return words.voice_envelope(self.runtime.policy, message, position, len(items),
                                        now, self._words_lang)
        return words.mail_envelope(message, position, len(items), now, self._words_lang)

    async def present(self, effect: Present) -> Any:
        message = effect.ref
        if effect.folder == VOICE:
            fetch = self.audio_of(message)
        else:
            fetch = asyncio.ensure_future(self._readable(message))
        try:
            await self.say_envelope(effect.folder, message)
        except BaseException:
            _quiet(fetch)
            raise
        assert self.menu is not None
        self.menu.feed(AudioStarted())
        self.prepare_next(effect)
        try:
            got = await self.slow(fetch)
        except self.unreadable as exc:
            log.info("phone menu for %s: message %s cannot be played: %s", self.user.id,
                     getattr(message, "uid", "?"), exc)
            await self.say_phrase("cannot_play")
            return Unplayable()
        except self.unavailable as exc:
            self.box_failed(exc)
            await self.say_phrase("unavailable")
            return Unplayable()
        if effect.folder == VOICE:
            await self.stream(got)
        else:
            lang = getattr(got, "language", None) or getattr(message, "language", None)
            notes = words.attachments(getattr(got, "attachments", ()), self._words_lang)
            if notes:
                await self.say_text(notes)
            await self.say_text((), language=lang, whole=got.text)
        return PlaybackEnded()

    async def say_envelope(self, folder: str, message: Any) -> None:
        """The envelope, from the files made ahead while the previous message played
        (:meth:`prepare_next`) when its words are still the same, else spoken now."""
        sentences = self.envelope(folder, message)
        ready = self._envelopes.pop(" ".join(sentences), None)
        if ready is not None and ready.done() and not ready.cancelled() \
                and ready.exception() is None:
            for name in ready.result():
                await self.stream(name)
            return
        if ready is not None:
            _quiet(ready)
        await self.say_text(sentences)

    def prepare_next(self, effect: Present) -> None:
        """Speak the next message's envelope into files while this one plays: "6" then
        costs no synthesis. At most one made ahead; stale ones are dropped."""
        speaker = self.services.speaker
        menu = self.menu
        if speaker is None or menu is None or effect.position + 1 >= effect.total:
            return
        items = menu.items(effect.folder)
        if effect.position + 1 >= len(items):
            return
        text = " ".join(self.envelope(effect.folder, items[effect.position + 1]))
        for stale in self._envelopes.values():
            _quiet(stale)
        self._envelopes = {text: asyncio.ensure_future(self._speak_to_files(text))}

    async def _speak_to_files(self, text: str) -> list[str]:
        folder = await self.scratch()
        speaker = self.services.speaker
        assert speaker is not None
        names = []
        async with contextlib.aclosing(speaker.speak(text, self._words_lang, folder,
                                                     fallback=self._words_lang)) as chunks:
            async for chunk in chunks:
                names.append(chunk.stream_name)
        return names

    async def _readable(self, message: Any) -> Any:
        if self.box is None and not await self.open_box(speak=False):
            raise NoMailbox("no IMAP session for this call")
        return await self.box.readable(message)

    def audio_of(self, message: Any) -> asyncio.Future[str]:
        """The message's audio decoded to a file Asterisk plays (fetched once per call)."""
        key = id(message)
        task = self._audio.get(key)
        if task is None or (task.done() and (task.cancelled() or task.exception())):
            task = asyncio.ensure_future(self._decode(message))
            self._audio[key] = task
        return task

    async def _decode(self, message: Any) -> str:
        if self.box is None and not await self.open_box(speak=False):
            raise NoMailbox("no IMAP session for this call")
        mime, data = await self.box.audio(message)
        decode = self.services.decode
        if decode is None:
            raise NotPlayable("no audio decoder (mailcall.playback) loaded")
        folder = await self.scratch()
        self._n += 1
        out = folder / f"vm-{self._n}.sln"
        await asyncio.get_running_loop().run_in_executor(None, decode, data, mime, out)
        return str(out.with_suffix(""))

    # ------------------------------------------------------------ files

    async def scratch(self) -> Path:
        """This call's folder for speech and decoded audio (Asterisk reads it)."""
        if self._folder is None:
            base = Path(self.runtime.setting("spool_dir")) / "menu"
            name = "call-" + safe_component(self.session.env.uniqueid)
            self._folder = await asyncio.get_running_loop().run_in_executor(
                None, _make_folders, base, name)
        return self._folder

    def next_name(self, what: str) -> str:
        self._n += 1
        return f"{safe_component(self.session.env.uniqueid)}.{what}{self._n}"

    async def close(self) -> None:
        for task in (*self._audio.values(), *self._envelopes.values()):
            if not task.done():
                task.cancel()
            _quiet(task)
        try:
            await self._stack.aclose()
        except Exception:
            log.exception("phone menu: closing the IMAP session failed")
        if self._folder is not None:
            folder, self._folder = self._folder, None
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: shutil.rmtree(folder, ignore_errors=True))


def reader_folder(path: Path) -> Path:
    """A folder of files mailcall writes and Asterisk only reads: 2750 whatever the umask
    (Asterisk's group passes and reads, never writes; docs/asterisk.md section 2)."""
    missing = []
    probe = path
    while not probe.is_dir() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in missing:
        os.chmod(folder, TRAVERSE_DIR_MODE)
    return path


def _make_folders(base: Path, name: str) -> Path:
    return reader_folder(base / name)


def _quiet(task: asyncio.Future[Any]) -> None:
    """Let `task` finish on its own; its result or error is no longer wanted."""
    if task.done():
        if not task.cancelled():
            task.exception()
    else:
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())


__all__ = ["MAIL", "VOICE", "MenuCall", "Services", "handler", "make_handler"]
