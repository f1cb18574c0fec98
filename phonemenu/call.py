"""One call in the menu: the listening loop between the caller and :mod:`.machine`.

The loop feeds the menu what happens on the line (a key, a wait that ran
out, a message's audio starting or ending) and carries out the effects it
gets back, in order; when one is cut by a key, the rest are dropped and the
key is fed (a key that cut the wait for a save or a delete comes as
:class:`.TypedDuringChange`, so the machine knows the confirmation and the
next message were never heard). Every decision about what a key does is the machine's
(:mod:`.keymap`'s table); this module only dispatches effects to the parts
that do them: :mod:`.saying` (prompts, phrases, speech), :mod:`.counts`,
:mod:`.presenting` (a message's envelope and content), :mod:`.mailbox` (the
IMAP session: marks, moves), :mod:`.actions_reply`, :mod:`.actions_call_back`,
:mod:`.actions_forward` and :mod:`.options` (greetings). Menus wait
``MENU_WAIT_MS`` for a key and are said again, so there is no silence longer
than about 3 s anywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from mailcall.agi import prompts
from mailcall.agi.commands import wait_for_digit
from mailcall.agi.session import AgiHangup, AgiSession
from mailcall.core.contracts import VoiceCounts

from . import actions_call_back, actions_forward, actions_reply, counts, options, words
from .errors import KeyPressed, NoMailbox, NotPlayable
from .machine import (
    MAIL,
    VOICE,
    WAITED_CHANGES,
    Act,
    ActFailed,
    End,
    FetchMore,
    Greeting,
    Key,
    Menu,
    MoreListed,
    Present,
    Say,
    Setting,
    Timeout,
    TypedDuringChange,
)
from .mailbox import CallMailbox, quiet
from .paging import Pager
from .presenting import Presenter
from .saying import Saying
from .scratch import Scratch
from .services import Services

MENU_WAIT_MS = 2500


class MenuCall:
    """One call's menu: the machine, the IMAP session, the scratch folder."""

    def __init__(self, session: AgiSession, runtime: Any, services: Services) -> None:
        self.session = session
        self.runtime = runtime
        self.services = services
        self.user: Any = None
        self.menu: Menu | None = None
        self.lamp: asyncio.Future[VoiceCounts | None] | None = None
        """The lamp's counts for the greeting, asked once the caller is in."""
        self.unavailable: tuple[type[BaseException], ...] = (*services.unavailable, NoMailbox)
        self.unreadable: tuple[type[BaseException], ...] = (*services.unreadable, NotPlayable)
        self.scratch = Scratch(runtime, session.env.uniqueid)
        self.saying = Saying(self)
        self.mailbox = CallMailbox(self)
        self.presenter = Presenter(self)
        self.pages = Pager(self)

    @property
    def who(self) -> str:
        """The user id for log lines ("?" before the login)."""
        return self.user.id if self.user is not None else "?"

    def listing_complete(self, folder: str) -> bool:
        """Whether `folder`'s list is all of it (the store lists at most max_listed, a page
        at a time: once the menu runs, it knows whether more may follow)."""
        if self.menu is not None:
            return not self.menu.more[folder]
        if folder == VOICE:
            return self.mailbox.voice_complete
        return self.mailbox.mail_count <= self.mailbox.mail_listed

    async def run(self) -> None:
        self.lamp = counts.ask_lamp(self.runtime, self.user.id)
        voice, mail, typed = await self.lists()
        self.menu = menu = Menu(voice=voice, mail=mail, more={
            f: not self.listing_complete(f) for f in (VOICE, MAIL)})
        effects = menu.start()
        if typed is not None:  # typed while the login was slow: it acts, as in the menu
            effects = menu.feed(Key(typed))
        while True:
            event = await self.carry_out(effects)  # the goodbye too, once the menu is done
            if menu.done:
                return
            if event is None:
                event = await self.wait_key()
            effects = menu.feed(event)
            # A key that cut "one moment please" while a page came (the machine left the
            # cursor on the message last heard), or the apology of a failed change: it
            # acts now.
            typed = event.typed if isinstance(event, MoreListed) else None
            typed = typed or self.mailbox.take_key()
            if typed is not None:
                effects = menu.feed(Key(typed))

    async def lists(self) -> tuple[list[Any], list[Any], str | None]:
        """Both folders' lists once the caller is in, and a key typed meanwhile (one that
        cut "one moment please" or the apology): it is fed to the menu, never lost, and
        it never ends the call (a KeyPressed here would reach no menu)."""
        voice, mail = await self.mailbox.start()
        return voice, mail, self.mailbox.take_key()

    async def carry_out(self, effects: Sequence[Any]) -> Any:
        """Do `effects` in order; the event a key, a message's end or a failed change
        makes, else None. A key that cut "one moment please" counts as a key; during a
        save or a delete it is a :class:`.TypedDuringChange`: the rest of the effects (the
        confirmation, the next message) are dropped, and the machine puts the cursor
        back on what the caller last heard announced."""
        for effect in effects:
            try:
                event = await self.effect(effect)
            except KeyPressed as pressed:
                self.mailbox.take_key()
                return Key(pressed.digit)
            if event is None and (typed := self.mailbox.take_key()) is not None:
                if isinstance(effect, Act) and effect.what in WAITED_CHANGES:
                    event = TypedDuringChange(effect.what, effect.folder, effect.ref, typed)
                else:
                    event = Key(typed)
            if event is not None:
                return event
        return None

    async def wait_key(self) -> Key | Timeout:
        reply = await self.session.run(wait_for_digit(MENU_WAIT_MS))
        self.saying.quiet_now()  # a key, or the wait's end: what comes next is timed from here
        code = reply.result_int
        if code is None or code < 0 or self.session.hungup:
            raise AgiHangup("caller hung up while the menu waited for a key")
        return Key(chr(code)) if code > 0 else Timeout()

    async def effect(self, effect: Any) -> Any:
        if isinstance(effect, Say):
            await self.say(effect)
            return None
        if isinstance(effect, Present):
            return await self.presenter.present(effect)
        if isinstance(effect, Act):
            if await self.act(effect):
                return None
            return ActFailed(effect.what, effect.folder, effect.ref)  # the rest is dropped
        if isinstance(effect, Greeting):
            await options.record_greeting(self, effect.kind)
            return None
        if isinstance(effect, Setting):
            await options.change_setting(self, effect.what)
            return None
        if isinstance(effect, FetchMore):
            return await self.pages.more(effect)
        if isinstance(effect, End):
            return None
        raise AssertionError(f"unknown effect {effect!r}")

    async def say(self, effect: Say) -> None:
        phrase = effect.phrase
        if phrase in prompts.MENU_PHRASES:
            await self.saying.stock(prompts.MENU_PHRASES[phrase], cut=effect.cut)
        elif phrase in ("counts", "folder_voice", "folder_mail"):
            await counts.say_counts(self, effect.folder, cut=effect.cut,
                                    greeting=phrase == "counts")
        elif phrase == "empty_folder":
            if effect.folder == VOICE:
                await counts.say_voice_numbers(self, 0, 0)
            else:
                await self.saying.text([words.mail_count(0, self.saying.words_lang)],
                                       repeats=True)
        else:
            await self.saying.phrase(phrase)

    async def act(self, effect: Act) -> bool:
        """Do `effect`; False only when a change of the mailbox failed (apology said).
        A message heard is marked in the background (:meth:`.CallMailbox.mark_heard`):
        the next one does not wait for the STORE, and nothing is said about it."""
        if effect.what == "seen":
            self.mailbox.mark_heard(effect.folder, effect.ref)
            return True
        if effect.what == "marked":
            return await self.heard_marked(effect.ref)
        if effect.what in ("save", "trash"):
            return await self.mailbox.change(effect.what, effect.folder, effect.ref)
        if effect.what == "envelope":
            await self.saying.text(self.presenter.envelope(effect.folder, effect.ref))
        elif effect.what == "reply":
            await actions_reply.reply(self, effect.folder, effect.ref)
        elif effect.what == "call_back":
            await actions_call_back.call_back(self, effect.folder, effect.ref)
        elif effect.what == "forward":
            await actions_forward.forward(self, effect.folder, effect.ref)
        return True

    async def heard_marked(self, message: Any) -> bool:
        """Whether the \\Seen asked in the background for `message` stands, waited for
        ("one moment please" if slow; on a session that failed under it, a new one
        writes it); False, the apology said, when it does not: then "saved" is not said,
        and the mark stays queued for the call's next session (:mod:`.mailbox`)."""
        mailbox = self.mailbox
        await mailbox.slow(asyncio.ensure_future(mailbox.session(speak=False)))
        if not mailbox.mark_pending(message):
            return True
        await mailbox.apologise()
        return False

    async def close(self) -> None:
        # The marks first, then the fetches nobody waits for are cancelled. That order is
        # no longer needed for the wire (a cancelled IMAP operation keeps the session's
        # lock until its thread is done, bounded by the store's timeout: mailstore/store.py
        # _run), so nothing interleaves on the connection either way; kept as harmless.
        await self.mailbox.marks_settled()
        self.presenter.cancel()
        self.pages.cancel()
        if self.lamp is not None:
            if not self.lamp.done():
                self.lamp.cancel()
            quiet(self.lamp)
        await self.mailbox.close()
        await self.scratch.remove()


__all__ = ["MAIL", "VOICE", "MenuCall"]
