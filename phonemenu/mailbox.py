"""The call's mailbox: one IMAP session (mailcall.mailstore), opened again after a failure.

Faults: every mailbox operation is bounded by the store's own timeout (1.5 s
by default); one still running gets "one moment please" said over the wait
(:mod:`.waiting`: no silence of 3 s), and a failure an apology, after which the
menu goes on. A failed session is dropped; the next operation opens another.
A hang-up while the session is being opened or the lists made cancels that
work, and the call's end waits for it (:meth:`CallMailbox.close`): no session
is left open, holding a connection of the store, for a caller who is gone.

Getting in (:meth:`CallMailbox.start`): the session opened, then both lists
made in turn with the other logins of the process (:mod:`.admission`), all
under one "one moment please", which also covers the PIN check before it
(:mod:`.entry`).

A message heard is marked ``\\Seen`` in the background (:meth:`mark_heard`):
the caller's next message does not wait for the STORE. Marks are written in
order on the call's one session, and every other use of the session
(:meth:`session`), and its closing, waits for those asked before it, so
nothing interleaves on the wire and a hang-up right after a message loses
no mark. A mark that fails is logged and tried again on the next session
the call opens, at the latest at its end; the caller hears no apology for it
(there is nothing they could do: the message simply stays new), and the
lamp is told only once the flag stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from mailcall.core.host.plugin_manager import announce

from .admission import admission
from .errors import KeyPressed, NoMailbox
from .machine import VOICE
from .waiting import over_the_wait

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

CLOSE_WAIT_S = 1.5
"""At the end of the call, the longest wait for a cancelled login when the store gives no
timeout of its own (mailstore's default, ``[mailstore] timeout``)."""


class CallMailbox:
    voice_examined: frozenset[int] = frozenset()
    """The voicemail UIDs the first listing examined (listed or refused for want of a
    seal): the next pages skip them (:mod:`.paging`)."""

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
        self._marks: list[tuple[str, MessageSummary]] = []
        """Messages heard, to be marked \\Seen in this order (:meth:`mark_heard`)."""
        self._marking: asyncio.Task[None] | None = None
        self._pending: set[asyncio.Future[Any]] = set()
        """Getting in, and sessions being opened: cancelled and waited for at the end of
        the call (:meth:`close`), so none is opened after it."""

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
        task = self._keep(asyncio.ensure_future(self._stack.enter_async_context(
            store.session(call.user.email, address=call.user.email))))
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

    async def start(self) -> tuple[list[Any], list[Any]]:
        """Both lists once the caller is in (voicemail, and unread mail with its count),
        under one "one moment please" with the session's opening; ([], []) when the
        mailbox cannot be reached (the apology said)."""
        work = self._keep(asyncio.ensure_future(self._start()))
        try:
            got = await self.slow(work)
        except self.call.unavailable as exc:
            self.failed(exc)
            await self.apologise()
            return [], []
        if got is None:  # the session could not be opened: logged, not yet said
            await self.apologise()
            return [], []
        voice, mail = got
        self.mail_listed = len(mail.messages)
        self.mail_count = int(mail.count)  # mailstore.UnreadMail
        return list(voice), list(mail.messages)

    async def _start(self) -> tuple[list[Any], Any] | None:
        """Covered by :meth:`slow`, so it says nothing itself (one AGI command at a time)."""
        if not await self.open(speak=False):
            return None
        async with admission().turn():
            voice = await self._voice()
            mail = await self.box.unread_mail()
        return voice, mail

    async def page(self, folder: str, *, skip: frozenset[int] = frozenset(),
                   before: int | None = None) -> Any:
        """The store's next page of `folder` (:mod:`.paging`): voicemail without the UIDs
        in `skip`, unread mail below UID `before`. Raises the store's error or NoMailbox
        and says nothing: the pager, which waits for it, drops the session and apologises."""
        box = await self.session(speak=False)  # after the marks asked before it
        if box is None:
            raise NoMailbox(f"no IMAP session for {self.call.who}'s next page of {folder}")
        if folder == VOICE:
            return await box.voice_listing(skip)
        return await box.unread_mail(before)

    async def _voice(self) -> list[Any]:
        got = await self.box.voice_listing()
        self.voice_examined = frozenset(got.examined)
        self.voice_complete = bool(got.complete)
        self.voice_new_complete = bool(got.new_complete)
        return list(got.messages)

    async def slow(self, task: asyncio.Future[Any]) -> Any:
        """`task`'s result, "one moment please" said over the wait (:mod:`.waiting`).

        A key that cuts that prompt is not lost, and neither is the result: the key is
        kept (:meth:`take_key`; the last one, if the caller typed again during a later
        reminder) and becomes the caller's next input once the operation is over, so a
        key typed while the login is slow acts in the menu instead of ending the call.
        A key followed by a failure is dropped with the failure. On a hang-up the task
        is left to finish or to be cancelled by :meth:`close`.
        """
        try:
            _done, pressed = await over_the_wait(self.call.saying, task)
        except BaseException:
            quiet(task)
            raise
        result = task.result()
        if pressed is not None:
            self.pressed = pressed
        return result

    def _keep(self, task: asyncio.Future[Any]) -> asyncio.Future[Any]:
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return task

    def mark_pending(self, message: MessageSummary) -> bool:
        """Whether `message`'s \\Seen (:meth:`mark_heard`) is still to be written."""
        return any(m is message for _f, m in self._marks)

    def take_key(self) -> str | None:
        """The key that cut "one moment please" during the last slow operation, once."""
        pressed, self.pressed = self.pressed, None
        return pressed

    async def session(self, *, speak: bool = True) -> Any | None:
        """The call's session for an operation, once the marks asked before it are
        written; None when it cannot be opened (the apology said if `speak`)."""
        await self.marks_written()
        if self.box is None:
            if not await self.open(speak=speak):
                return None
            if self._marks:  # left by a session that failed under them: this one writes them
                self._write_marks_soon()
                await self.marks_written()
        return self.box

    async def change(self, what: str, folder: str, message: MessageSummary) -> bool:
        """Save (mark seen) or move to Trash, and tell the lamp; False (apology said) on
        failure. The caller hears the outcome ("saved", "deleted"), so it is waited for."""
        call = self.call
        box = await self.session()
        if box is None:
            return False
        operation = box.move_to_trash if what == "trash" else box.mark_seen
        try:
            await self.slow(asyncio.ensure_future(operation(message)))
        except call.unreadable as exc:
            log.info("phone menu for %s: %s of a message skipped: %s", call.who, what, exc)
            return False
        except call.unavailable as exc:
            self.failed(exc)
            await self.apologise()
            return False
        self._changed(what, folder, message)
        return True

    def _changed(self, what: str, folder: str, message: MessageSummary) -> None:
        """The change stands: the lamp follows (voicemail only)."""
        if folder == VOICE:
            call = self.call
            reason = {"trash": "deleted", "save": "saved"}.get(what, "heard")
            announce(call.runtime.pm, "mailcall_mailbox_changed", "the change stands",
                     runtime=call.runtime, user=call.user.id, folder=message.folder,
                     reason=reason)

    # ------------------------------------------------------------ marks, in the background

    def mark_heard(self, folder: str, message: MessageSummary) -> None:
        """Mark `message` \\Seen after those asked before it, without waiting."""
        self._marks.append((folder, message))
        self._write_marks_soon()

    def _write_marks_soon(self) -> None:
        if self._marks and (self._marking is None or self._marking.done()):
            self._marking = asyncio.ensure_future(self._write_marks())

    async def marks_written(self) -> None:
        """Wait for the marks being written (not cancelled if the waiter is: a hang-up
        while a STORE is on the wire still lets it finish)."""
        task = self._marking
        if task is not None and not task.done():
            await asyncio.shield(task)

    async def _write_marks(self) -> None:
        call = self.call
        while self._marks:
            box = self.box
            if box is None:
                return  # no session: the next one the call opens writes them (session())
            folder, message = self._marks[0]
            try:
                await box.mark_seen(message)
            except call.unreadable as exc:
                log.info("phone menu for %s: message %s heard, not marked read: %s",
                         call.who, message.uid, exc)
                self._marks.pop(0)
                continue
            except call.unavailable as exc:
                log.warning("phone menu for %s: message %s heard, not marked read yet (%s); "
                            "tried again on the call's next IMAP session", call.who,
                            message.uid, exc)
                if self.box is box:
                    self.failed(exc)
                return
            self._marks.pop(0)
            self._changed("seen", folder, message)

    async def marks_settled(self) -> None:
        """At the end of the call, every mark written, or logged as lost: a hang-up right
        after a message keeps its \\Seen."""
        try:
            await self.marks_written()
            if self._marks and self.call.user is not None:
                await self.session(speak=False)  # one more try, on a new session
            if self._marks:
                log.error("phone menu for %s: %d message(s) heard but not marked read "
                          "(UIDs %s): the mail server was unreachable at the end of the "
                          "call; they stay new in the mailbox", self.call.who,
                          len(self._marks), ", ".join(str(m.uid) for _f, m in self._marks))
                self._marks.clear()
        except Exception:
            log.exception("phone menu for %s: writing the last \\Seen marks failed",
                          self.call.who)

    async def close(self) -> None:
        """End of the call. Getting in or a session's opening still under way (the caller
        hung up during "one moment please") is cancelled and waited for, at most the
        store's timeout, before the stack closes: a session it opened later would never
        be exited, keeping its connection and one of the store's slots."""
        pending = set(self._pending)
        if pending:
            for task in pending:
                task.cancel()
            # mailstore.MailStore's settings; a store without them: the default timeout
            settings = getattr(self.call.services.store, "settings", None)
            bound = float(getattr(settings, "timeout", CLOSE_WAIT_S))
            _done, late = await asyncio.wait(pending, timeout=bound)
            for task in pending:
                quiet(task)
            if late:
                log.error("phone menu for %s: getting into the mailbox did not end within "
                          "%s s of being cancelled at the end of the call; its IMAP session "
                          "may stay open until the mail store's login thread ends (see "
                          "[mailstore] timeout in phone-menu.toml)", self.call.who, bound)
        await self.marks_settled()
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
