"""The next pages of a call's folders: what :class:`~.machine.FetchMore` asks for.

The mail store lists a folder ``max_listed`` at a time; with 2,000 messages a
caller would otherwise reach only the first 50. The machine asks for the next
page a few messages before the end (in the background) and again, waiting,
when 6 goes past the end. One fetch per folder is in flight at a time, on the
call's one IMAP session (whose operations run one after the other), and a
page is handed to the machine only when it asks, so the counts the call says
(:meth:`.call.MenuCall.listing_complete`, the mailbox's flags) always describe
the list the machine holds.

What comes next: voicemail continues the store's order (new, then saved)
without the UIDs this call already listed or examined — by UID, because a
message heard meanwhile is ``\\Seen`` and would otherwise come back as saved;
unread mail continues below the lowest UID listed (older mail).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from .errors import NoMailbox
from .machine import VOICE, FetchMore, MoreListed

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")


class Pager:
    """One call's page fetches, at most one per folder in flight."""

    def __init__(self, call: MenuCall) -> None:
        self.call = call
        self._tasks: dict[str, asyncio.Future[Any]] = {}
        self._examined: set[int] = set()
        """Voicemail UIDs later pages examined (listed or refused for want of a seal);
        the first page's are :attr:`.CallMailbox.voice_examined`."""

    async def more(self, effect: FetchMore) -> MoreListed | None:
        """Start the fetch of `effect.folder`'s next page if none is running; with
        ``wait``, the page as the machine's event ("one moment please" if slow, and the
        key that cut it as ``typed``; on a failure the apology, and ``failed``). The
        session a failed fetch used was dropped by :meth:`_fetch` when it failed, so
        nothing is dropped here: another may have been opened since."""
        folder = effect.folder
        task = self._tasks.get(folder)
        if task is None:
            task = self._tasks[folder] = asyncio.ensure_future(self._fetch(folder))
        if not effect.wait:
            return None
        del self._tasks[folder]
        mailbox = self.call.mailbox
        try:
            page = await mailbox.slow(task)
        except self.call.unavailable as exc:
            log.warning("phone menu for %s: the next page of %s could not be listed: %s",
                        self.call.who, folder, exc)
            await mailbox.apologise()
            return MoreListed(folder, failed=True)
        return self._take(folder, page, mailbox.take_key())

    async def _fetch(self, folder: str) -> Any:
        """The next page; on a failure, the session it used is dropped at once, and only
        that one (read later, when 6 reaches the end, the error would drop whatever
        session the call had opened meanwhile, which would stay logged in unused)."""
        call = self.call
        menu = call.menu
        mailbox = call.mailbox
        listed = list(menu.items(folder)) if menu is not None else []
        box = await mailbox.session(speak=False)
        if box is None:
            raise NoMailbox(f"no IMAP session for {call.who}'s next page of {folder}")
        # page() takes the same session: nothing runs between the two (the marks before
        # it are written, so its own wait for them returns at once).
        try:
            if folder == VOICE:
                skip = (frozenset(m.uid for m in listed) | frozenset(self._examined)
                        | mailbox.voice_examined)
                return await mailbox.page(folder, skip=skip)
            lowest = min((m.uid for m in listed), default=None)
            return await mailbox.page(folder, before=lowest)
        except call.unavailable as exc:
            if mailbox.box is box:
                mailbox.failed(exc)
            raise

    def _take(self, folder: str, page: Any, typed: str | None) -> MoreListed:
        """The page as the machine's event, the call's counts brought up to it."""
        menu = self.call.menu
        have = {m.uid for m in menu.items(folder)} if menu is not None else set()
        refs = tuple(m for m in page.messages if m.uid not in have)
        mailbox = self.call.mailbox
        if folder == VOICE:  # mailstore.VoiceMail
            self._examined.update(page.examined)
            mailbox.voice_complete = bool(page.complete)
            mailbox.voice_new_complete = bool(page.new_complete)
            return MoreListed(folder, refs, more=not page.complete, typed=typed)
        mailbox.mail_count = int(page.count)  # mailstore.UnreadMail
        mailbox.mail_listed += len(refs)
        return MoreListed(folder, refs, more=bool(page.more), typed=typed)

    def cancel(self) -> None:
        """At the end of the call: fetches nobody will wait for. Their outcome is read so
        asyncio does not log it; a fetch already sent runs to its end in the store."""
        for task in self._tasks.values():
            task.cancel()
            task.add_done_callback(_quiet)
        self._tasks.clear()


def _quiet(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()

__all__ = ["Pager"]
