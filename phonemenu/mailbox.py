"""The call's mailbox: one IMAP session (mailcall.mailstore), opened again after a failure.

Faults: every mailbox operation is bounded by the store's own timeout (1.5 s
by default); one still running after ``SLOW_S`` gets "one moment please"
said over the wait, and a failure an apology, after which the menu goes on.
A failed session is dropped; the next operation opens another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from mailcall.agi import prompts
from mailcall.core.host.plugin_manager import announce

from .errors import KeyPressed
from .machine import VOICE

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

SLOW_S = 1.0
"""A mailbox operation still running after this gets "one moment please" said."""


class CallMailbox:
    def __init__(self, call: MenuCall) -> None:
        self.call = call
        self.box: Any = None
        self._stack = contextlib.AsyncExitStack()
        self._opening = asyncio.Lock()
        self.mail_count = 0
        """Every unread mail of the inbox (exact: the store counts them all)."""
        self.mail_listed = 0
        """How many of them the store listed (at most max_listed)."""
        self.voice_complete = True
        self.voice_new_complete = True
        """Whether the voicemail listing's counts are exact (mailstore VoiceMail)."""
        self.pressed: str | None = None
        """A key that cut "one moment please" (:meth:`slow`), not yet fed to the menu."""

    async def open(self, *, speak: bool = True) -> bool:
        """The call's IMAP session, opened again after a failure; False when it cannot be
        (the apology said, unless `speak` is False: a background fetch never speaks, the
        part of the menu waiting for it does)."""
        async with self._opening:  # a fetch in the background and the menu: one session
            return await self._open(speak)

    async def _open(self, speak: bool) -> bool:
        if self.box is not None:
            return True
        call = self.call
        store = call.services.store
        if store is None:
            log.error("phone menu for %s: no mail store configured (docs/phone-menu.md, "
                      "phone-menu.toml); the caller hears an apology", call.who)
            if speak:
                await self.apologise()
            return False
        task = asyncio.ensure_future(self._stack.enter_async_context(
            store.session(call.user.email, address=call.user.email)))
        try:
            self.box = await (self.slow(task) if speak else task)
        except call.unavailable as exc:
            log.warning("phone menu for %s: mailbox unreachable: %s", call.who, exc)
            if speak:
                await self.apologise()
            return False
        return True

    async def apologise(self) -> None:
        """Say the mailbox is out of reach. A key that cuts it is kept (:meth:`take_key`):
        the operation that failed has returned its failure, and the key acts after it
        (a KeyPressed here would lose which operation failed)."""
        try:
            await self.call.saying.phrase("unavailable")
        except KeyPressed as exc:
            self.pressed = exc.digit

    def failed(self, exc: BaseException) -> None:
        log.warning("phone menu for %s: mailbox operation failed: %s", self.call.who, exc)
        self.box = None  # the store closed that session; the next operation opens another

    async def load(self) -> tuple[list[Any], list[Any]]:
        """Both lists, once the caller is in: voicemail, and unread mail with its count."""
        if self.box is None:
            return [], []
        try:
            voice = await self.slow(asyncio.ensure_future(self._voice()))
            mail = await self.slow(asyncio.ensure_future(self.box.unread_mail()))
        except self.call.unavailable as exc:
            self.failed(exc)
            await self.apologise()
            return [], []
        self.mail_listed = len(mail.messages)
        self.mail_count = int(mail.count)  # mailstore.UnreadMail
        return list(voice), list(mail.messages)

    async def _voice(self) -> list[Any]:
        got = await self.box.voice_listing()
        self.voice_complete = bool(got.complete)
        self.voice_new_complete = bool(got.new_complete)
        return list(got.messages)

    async def slow(self, task: asyncio.Future[Any]) -> Any:
        """`task`'s result; "one moment please" is said if it takes longer than SLOW_S.

        A key that cuts that prompt is not lost, and neither is the result: the key is
        kept (:meth:`take_key`) and becomes the caller's next input once the operation
        is over, so a key typed while the login is slow acts in the menu instead of
        ending the call. A key followed by a failure is dropped with the failure.
        """
        done, _ = await asyncio.wait({task}, timeout=SLOW_S)
        if not done:
            pressed: str | None = None
            try:
                await self.call.saying.stream(prompts.ONE_MOMENT)
            except KeyPressed as exc:
                pressed = exc.digit
            except BaseException:
                quiet(task)
                raise
            result = await task
            if pressed is not None:
                self.pressed = pressed
            return result
        return task.result()

    def take_key(self) -> str | None:
        """The key that cut "one moment please" during the last slow operation, once."""
        pressed, self.pressed = self.pressed, None
        return pressed

    async def change(self, what: str, folder: str, message: MessageSummary) -> bool:
        """Mark seen or move to Trash, and tell the lamp; False (apology said) on failure."""
        call = self.call
        if self.box is None and not await self.open():
            return False
        operation = self.box.move_to_trash if what == "trash" else self.box.mark_seen
        try:
            await self.slow(asyncio.ensure_future(operation(message)))
        except call.unreadable as exc:
            log.info("phone menu for %s: %s of a message skipped: %s", call.who, what, exc)
            return False
        except call.unavailable as exc:
            self.failed(exc)
            await self.apologise()
            return False
        if folder == VOICE:
            reason = {"trash": "deleted", "save": "saved"}.get(what, "heard")
            announce(call.runtime.pm, "mailcall_mailbox_changed", "the change stands",
                     runtime=call.runtime, user=call.user.id, folder=message.folder,
                     reason=reason)
        return True

    async def close(self) -> None:
        try:
            await self._stack.aclose()
        except Exception:
            log.exception("phone menu: closing the IMAP session failed")


def quiet(task: asyncio.Future[Any]) -> None:
    """Let `task` finish on its own; its result or error is no longer wanted."""
    if task.done():
        if not task.cancelled():
            task.exception()
    else:
        task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
