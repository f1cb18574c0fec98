"""Recounting mailboxes on demand: pokes coalesce, at most N IMAP connections at once.

A poke says "this user's lamp may have changed". While the user waits to be
counted, more pokes change nothing (a flood of 100 flag changes is one count
or two); a poke that arrives while the user is being counted marks it to be
counted once more, since that count may have missed the change (and whoever
waits for that user waits for the second count). A short ``debounce`` lets a
burst gather before the first count.

Pokes go before the bulk of a reconcile: a trigger or a deposit during a pass
over 10,000 mailboxes is counted within its debounce, not after the pass.

The blocking count (:class:`mailcall.mwi.imap.ImapCounter`) runs in a pool of
``max_connections`` threads: that pool is the bound on IMAP connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor

from .counts import CountError, Counts

log = logging.getLogger("mailcall.mwi")

Result = Counts | CountError


class Refresher:
    def __init__(self, count: Callable[[str], Counts],
                 on_result: Callable[[str, Result], None], *,
                 max_connections: int = 8, debounce: float = 0.05) -> None:
        self._count = count
        self._on_result = on_result
        self.max_connections = max_connections
        self.debounce = debounce
        self._dirty: dict[str, float] = {}
        """Poked users -> time of the first poke since they were last counted (oldest first)."""
        self._bulk: dict[str, None] = {}
        """Users a reconcile still has to count (after every poked user)."""
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._waiters: list[tuple[set[str], asyncio.Future[None], bool]] = []
        """(users left, future, strict): a strict waiter (settled) is released only by a
        count that began after every poke; a reconcile's by any finished count."""
        self._wake: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._pool: ThreadPoolExecutor | None = None
        self.counted = 0

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._pool = ThreadPoolExecutor(self.max_connections, thread_name_prefix="mwi-imap")
        self._workers = [asyncio.create_task(self._work(), name=f"mwi count {i}")
                         for i in range(self.max_connections)]

    async def stop(self) -> None:
        for task in self._workers:
            task.cancel()
        for task in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._workers = []
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        for _, fut, _strict in self._waiters:
            if not fut.done():
                fut.cancel()

    @property
    def waiting(self) -> int:
        return len(self._dirty) + len(self._bulk) + len(self._again)

    def poke(self, user: str) -> None:
        """`user`'s lamp may have changed: count them soon, before any reconcile work."""
        loop = asyncio.get_running_loop()
        if user in self._running:
            self._again.add(user)  # recounted when this count ends: no worker to wake
        elif user not in self._dirty:
            self._bulk.pop(user, None)
            first = not self._dirty
            self._dirty[user] = loop.time()
            if first:  # a later poke's deadline is never earlier than the head's
                self._wake_workers()

    def _queue_bulk(self, user: str) -> None:
        if user in self._running:
            self._again.add(user)
        elif user not in self._dirty and user not in self._bulk:
            self._bulk[user] = None
            self._wake_workers()

    def _wake_workers(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _pending(self, user: str) -> bool:
        return (user in self._dirty or user in self._bulk or user in self._running
                or user in self._again)

    async def count_all(self, users: Iterable[str]) -> None:
        """Count every user once (beside any pokes), returning when all are done."""
        todo = set(users)
        if not todo:
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((todo, fut, False))
        for user in list(todo):
            self._queue_bulk(user)
        await fut

    async def settled(self, user: str) -> None:
        """Return once no count of `user` is pending or under way (at once if none is)."""
        if not self._pending(user):
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(({user}, fut, True))
        await fut

    def _done(self, user: str, *, final: bool = True) -> None:
        """A count of `user` finished; `final`: no poke came during it."""
        keep = []
        for todo, fut, strict in self._waiters:
            if final or not strict:
                todo.discard(user)
            if todo:
                keep.append((todo, fut, strict))
            elif not fut.done():
                fut.set_result(None)
        self._waiters = keep

    def _take(self, now: float) -> str | None:
        if self._dirty:
            user, first = next(iter(self._dirty.items()))
            if first + self.debounce <= now:
                del self._dirty[user]
                return user
        if self._bulk:
            user = next(iter(self._bulk))
            del self._bulk[user]
            return user
        return None

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            user = self._take(loop.time())
            if user is None:
                self._wake.clear()
                if not self._dirty:
                    await self._wake.wait()
                    continue
                first = next(iter(self._dirty.values()))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(),
                                           max(0.0, first + self.debounce - loop.time()))
                continue
            self._running.add(user)
            try:
                result: Result = await loop.run_in_executor(self._pool, self._count, user)
            except CountError as exc:
                result = exc
            except Exception as exc:  # a bug must not stop the lamp of everyone else
                log.exception("mwi: counting %s failed unexpectedly", user)
                result = CountError("protocol", f"unexpected error: {exc}")
            finally:
                self._running.discard(user)
            self.counted += 1
            try:
                self._on_result(user, result)
            except Exception:
                log.exception("mwi: handling the count of %s failed", user)
            if user in self._again:
                # Poked while being counted: that count may predate the change. Whoever
                # waits to be told the counts (settled) waits for the next count; a
                # reconcile has its count (a user poked without end cannot hold it).
                self._again.discard(user)
                self.poke(user)
                self._done(user, final=False)
            else:
                self._done(user)
