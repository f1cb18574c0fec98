"""Logins take turns for the CPU-heavy part of getting into the menu: listing the mailbox.

Why: when many callers type their PIN at once, every login lists its
voicemail and unread mail on the mail store's threads (IMAP responses parsed,
deposit seals checked). Run all at once, they share the CPU and the GIL
evenly, so every caller waits about as long as the whole burst (processor
sharing), and the event loop, one thread among fifty busy ones, gets its turn
so rarely that "one moment please" comes late. Taking turns in arrival order,
a few at a time, serves the first callers at once and leaves the loop free to
say "one moment please" on time to those still waiting (:mod:`.mailbox`).

Only the listing takes turns: opening the session (connect and log in) mostly
waits on the network and on Dovecot, and with the server down every opening
fails within the store's timeout; queuing those would delay everyone's
apology. A turn waited for longer than :data:`WAIT_S` is taken anyway, so a
server that answers slowly (not a busy CPU) cannot hold callers in the queue
without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import weakref
from collections.abc import AsyncIterator

log = logging.getLogger("mailcall.phonemenu")

SLOTS = 4
"""Listings under way at once in a server process."""
WAIT_S = 5.0
"""Longest a login waits for its turn; then it goes ahead anyway."""


class Admission:
    """Turns in arrival order (asyncio's semaphore serves its waiters first come, first
    served), at most `slots` at once, each waited for at most `wait` seconds."""

    def __init__(self, slots: int = SLOTS, wait: float = WAIT_S) -> None:
        if slots < 1:
            raise ValueError(f"an admission needs at least one slot, not {slots}")
        self.slots = slots
        self.wait = wait
        self._free = asyncio.Semaphore(slots)
        self.waiting = 0
        """Logins waiting for a turn now (for tests and the log)."""

    @contextlib.asynccontextmanager
    async def turn(self) -> AsyncIterator[bool]:
        """Hold a turn while the block runs; yields False when it went ahead without one
        (waited `wait` seconds)."""
        self.waiting += 1
        got = False
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            # arriving as the acquire completes, and the slot taken is never given back.
            async with asyncio.timeout(self.wait):
                await self._free.acquire()
                got = True
        except TimeoutError:
            log.warning("phone menu: a login waited %.0f s for one of the %d listing turns "
                        "and goes ahead without one. Either the mail server is slow to list "
                        "mailboxes (check IMAP latency: Dovecot's log, its CPU and disk) or "
                        "this server process is CPU-bound (too many callers for it). The "
                        "turns and the wait are SLOTS and WAIT_S in "
                        "mailcall/phonemenu/admission.py", self.wait, self.slots)
        finally:
            self.waiting -= 1
        try:
            yield got
        finally:
            if got:
                self._free.release()


_admissions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Admission] = \
    weakref.WeakKeyDictionary()


def admission() -> Admission:
    """The running loop's admission: one per server process (a process runs one loop;
    tests run one loop each)."""
    loop = asyncio.get_running_loop()
    got = _admissions.get(loop)
    if got is None:
        got = _admissions[loop] = Admission(SLOTS, WAIT_S)
    return got
