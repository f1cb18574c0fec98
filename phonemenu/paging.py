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
        """Voicemail UIDs later pages examined (listed or refused for want of a seal)."""

    async def more(self, effect: FetchMore) -> MoreListed | None:
        """Start the fetch of `effect.folder`'s next page if none is running; with
        ``wait``, the page as the machine's event ("one moment please" if slow; on a
        failure the apology, and ``failed``)."""
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
            if not isinstance(exc, NoMailbox):  # no session to drop
                mailbox.failed(exc)
            await mailbox.apologise()
            return MoreListed(folder, failed=True)
        return self._take(folder, page)

    async def _fetch(self, folder: str) -> Any:
        menu = self.call.menu
        listed = list(menu.items(folder)) if menu is not None else []
        if folder == VOICE:
            skip = frozenset(m.uid for m in listed) | frozenset(self._examined)
            return await self.call.mailbox.page(folder, skip=skip)
        lowest = min((m.uid for m in listed), default=None)
        return await self.call.mailbox.page(folder, before=lowest)

    def _take(self, folder: str, page: Any) -> MoreListed:
        """The page as the machine's event, the call's counts brought up to it."""
        menu = self.call.menu
        have = {m.uid for m in menu.items(folder)} if menu is not None else set()
        refs = tuple(m for m in page.messages if m.uid not in have)
        mailbox = self.call.mailbox
        if folder == VOICE:  # mailstore.VoiceMail
            self._examined.update(page.examined)
            mailbox.voice_complete = bool(page.complete)
            mailbox.voice_new_complete = bool(page.new_complete)
            return MoreListed(folder, refs, more=not page.complete)
        mailbox.mail_count = int(page.count)  # mailstore.UnreadMail
        mailbox.mail_listed += len(refs)
        return MoreListed(folder, refs, more=bool(page.more))

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
