"""Carrying out Notify actions: durable, retried, de-duplicated, rate-limited.

Who calls it: the Sieve bridge (new mail, after answering Dovecot) and the
deposit worker (a voicemail or fax delivered), through ``runtime.notifier``.
:meth:`Dispatcher.submit` writes each notification to the durable queue
(:mod:`.store`) before it counts as accepted; only then is it sent, so a
restart or kill -9 loses nothing accepted, and pending entries go out at start.

A notification is recorded as sent, for de-duplication (one per Message-ID
and user, even when the MTA retries a delivery or a mail is addressed twice)
and for the per-user hourly rate limit (``channels.rate_limit_per_hour``),
only once its channel took it. A temporary failure is retried with backoff
(:mod:`.retry`) until a deadline; a permanent one is reported once, with what
to do. The medium is the one the plan chose (the user's preferred one), never
switched silently. One user's notifications are sent one at a time, so two
copies of a mail cannot both slip past de-duplication or the rate limit.

Two clocks: "sent" times (the rate limit, de-duplication) are the runtime's
policy clock, like every other decision; retry times are the wall clock, so
that a backoff runs its real length whatever the policy clock says.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

from mailcall.core.host.runtime import Runtime
from mailcall.core.text import display_text

from .channel import Auditor, Channel, temporary_errors_of
from .notice import MailNotice, loop_risk
from .relay import sender_address
from .retry import Retry
from .sending import HOUR, Sending
from .store import Entry, Store, StoreError

log = logging.getLogger("mailcall.notifications")


class Dispatcher(Sending):
    """The notification service of one runtime: queue, send, retry; bounded in size and time.

    It is the ``runtime.notifier`` the Sieve bridge and the deposit worker
    share, so that one rate limit and one de-duplication memory cover
    everything a user's mobile receives. It accepts and schedules; what one
    attempt ends in is :class:`~mailcall.notifications.sending.Sending`'s.
    """

    name = "notifications"
    dedup_window = timedelta(days=2)
    send_timeout = 30.0
    batch_delay = 0.05
    """Notifications are not urgent, deliveries are: what arrives within this is sent
    together, so a busy server wakes up (and writes its audit file) once per batch."""
    max_batch = 200
    prune_every = 600.0
    complain_every = 600.0

    def __init__(self, runtime: Runtime, channels: Iterable[Channel], *,
                 path: str | os.PathLike[str], queue_size: int = 10000,
                 retry: Retry | None = None) -> None:
        self.runtime = runtime
        channels = list(channels)
        self.channels: dict[str, Channel] = {}
        self.temporary: dict[str, tuple[type[BaseException], ...]] = {}
        """Each medium's checked ``temporary_errors``, read once here, not at a failure."""
        for channel in channels:
            # Which plugin's channel serves a medium is decided where they are collected
            # (collected_by_name, plugins/channels.py); two here is the caller's mistake.
            if channel.medium in self.channels:
                raise ValueError(f"two channels for medium {channel.medium!r} given to the "
                                 "dispatcher; pass one per medium (collected_by_name)")
            self.temporary[channel.medium] = temporary_errors_of(channel)
            self.channels[channel.medium] = channel
        self._audit = [c for c in channels if isinstance(c, Auditor)]
        self.store = Store(path)
        self.queue_size = queue_size
        self.retry = retry or Retry()
        self._executor: ThreadPoolExecutor | None = None
        self._pending: dict[int, Entry] = {}
        self._heap: list[tuple[float, int]] = []
        self._running: set[int] = set()
        self._busy: set[str] = set()
        self._waiting: dict[str, list[tuple[float, int]]] = {}
        """Due heap items of a user being sent to: out of the heap (where their past due
        time would wake the scheduler at once, again and again) until that send ends."""
        self._writes: list[tuple[list[MailNotice], asyncio.Future[list[Entry] | None], bool]] = []
        self._writing = 0
        self._writer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._scheduler: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._unavailable: str | None = None
        self._complained = float("-inf")

    # -- the service -------------------------------------------------------
    async def start(self) -> None:
        """Open the queue and send what it holds from before (a restart, a crash).

        A queue that cannot be opened (unwritable spool, another ``mailcall serve``
        holding it) does not stop the server: calls, voicemail and mail matter more
        than the SMS about them. It is said once, and each refused notification after
        that at most every ``complain_every`` seconds.
        """
        try:
            left = await self._db(self.store.open)
        except StoreError as exc:
            self._unavailable = str(exc)
            log.error("notifications unavailable: %s. Calls, voicemail and mail go on; "
                      "nobody's mobile is told until this is fixed and mailcall restarted", exc)
            return
        for entry in left:
            if entry.id not in self._pending:
                self._queue(entry)
        if left:
            log.info("%d notification(s) accepted before the restart are in %s: sending them",
                     len(left), self.path)
        self._scheduler = asyncio.create_task(self._schedule(), name="notifications")

    async def stop(self, grace: float) -> None:
        """Let due notifications go out for at most `grace` seconds; the rest stay queued."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self.drain()
        for task in (self._scheduler, *self._tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._scheduler, *self._tasks) if t is not None),
                             return_exceptions=True)
        self._scheduler = None
        self._running.clear()
        self._busy.clear()
        self._waiting.clear()
        if self._writer is not None:  # what was accepted must reach the disk
            await asyncio.gather(self._writer, return_exceptions=True)
        if self._pending:
            log.warning("stopping with %d notification(s) not sent yet: they stay in %s and "
                        "are sent at the next start", len(self._pending), self.path)
        if self._executor is not None:
            await self._db(self.store.close)
            self._executor.shutdown(wait=False)
            self._executor = None
        self._pending.clear()
        self._heap.clear()

    async def drain(self) -> None:
        """Until nothing is being written or sent, and nothing is due now (retries
        planned for later do not count)."""
        while True:
            now = time.time()
            due = self._scheduler is not None and any(
                e.due <= now for e in self._pending.values())
            if not (self._writes or self._writing or self._running or due):
                return
            await asyncio.sleep(0.01)

    # -- accepting ---------------------------------------------------------
    def submit(self, notice: MailNotice) -> asyncio.Future[bool]:
        """Queue `notice` durably. Returns at once; the future says True once every
        notification of it is on disk (or was skipped as a loop risk), False (and an
        ERROR in the log) when it could not be stored: queue full or unwritable."""
        stored = self._accept(notice)
        accepted: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        def done(f: asyncio.Future[list[Entry] | None]) -> None:
            if not accepted.done():
                accepted.set_result(f.result() is not None)

        stored.add_done_callback(done)
        return accepted

    def _accept(self, notice: MailNotice, *, claim: bool = False
                ) -> asyncio.Future[list[Entry] | None]:
        loop = asyncio.get_running_loop()
        stored: asyncio.Future[list[Entry] | None] = loop.create_future()
        risk = loop_risk(notice, sender_address(self.runtime.policy)) \
            if notice.origin == "mail" else None
        if risk or not notice.notifications:
            for one in notice.split():
                self._spawn(self._record(one, f"skipped: {risk}", 0))
            stored.set_result([])
            return stored
        parts = notice.split()
        if self._unavailable is not None:
            if time.monotonic() - self._complained >= self.complain_every:
                self._complained = time.monotonic()
                log.error("not notifying %s of mail %s (nor anyone else, this is said once "
                          "every %.0f min): notifications unavailable: %s",
                          display_text(notice.recipient, 200), notice.shown_id,
                          self.complain_every / 60, self._unavailable)
            stored.set_result(None)
            return stored
        if len(self._pending) + self._writing + len(parts) > self.queue_size:
            log.error("notification queue %s full (%d waiting): not notifying %s of mail %s; "
                      "are the channels failing? (see the WARNINGs before)",
                      self.path, self.queue_size, display_text(notice.recipient, 200),
                      notice.shown_id)
            stored.set_result(None)
            return stored
        self._writing += len(parts)
        # `claim`: the caller attempts these itself (dispatch), the scheduler must not.
        self._writes.append((parts, stored, claim))
        if self._writer is None or self._writer.done():
            self._writer = loop.create_task(self._write())
        return stored

    async def _write(self) -> None:
        # Group commit: everything submitted while the last transaction was being
        # fsynced goes into the next one.
        while self._writes:
            batch, self._writes = self._writes, []
            notices = [n for parts, _, _ in batch for n in parts]
            try:
                entries = await self._db(self.store.add, notices, time.time())
            except Exception as exc:
                log.error("notification queue %s cannot be written (%s): %d notification(s) "
                          "not accepted; check the disk and the permissions of %s",
                          self.path, exc, len(notices), self.path.parent)
                for _, future, _ in batch:
                    future.set_result(None)
                self._writing -= len(notices)
                continue
            self._writing -= len(notices)
            start = 0
            for parts, future, claim in batch:
                mine = entries[start:start + len(parts)]
                start += len(parts)
                for entry in mine:
                    self._pending[entry.id] = entry
                    if not claim:
                        heapq.heappush(self._heap, (entry.due, entry.id))
                future.set_result(mine)
            self._wake.set()

    def _queue(self, entry: Entry) -> None:
        self._pending[entry.id] = entry
        heapq.heappush(self._heap, (entry.due, entry.id))
        self._wake.set()

    # -- sending -----------------------------------------------------------
    async def dispatch(self, notice: MailNotice) -> list[str]:
        """Accept `notice` and make one attempt at each notification now; one outcome
        word per notification ("sent", "duplicate", "rate-limited", "no-channel",
        "skipped: ...", "failed: ...", "retrying: ..." when it stays queued)."""
        parts = notice.split()
        risk = loop_risk(notice, sender_address(self.runtime.policy)) \
            if notice.origin == "mail" else None
        if risk:
            for one in parts:
                await self._record(one, f"skipped: {risk}", 0)
            return [f"skipped: {risk}"] * len(parts)
        entries = await self._accept(notice, claim=True)
        if entries is None:
            return ["not-queued"] * len(parts)
        outcomes = []
        for entry in entries:
            while entry.user in self._busy:
                await asyncio.sleep(0.01)
            outcomes.append(await self._attempt(entry))
        return outcomes

    async def _schedule(self) -> None:
        last_prune = 0.0
        while True:
            now = time.time()
            if now - last_prune >= self.prune_every:
                last_prune = now
                await self._prune()
            ready = self._take_ready(now)
            if not ready:
                self._wake.clear()
                timeout = self.prune_every
                if self._heap:
                    timeout = min(timeout, max(self._heap[0][0] - now, 0.0))
                alarm = asyncio.get_running_loop().call_later(timeout, self._wake.set)
                try:
                    await self._wake.wait()
                finally:
                    alarm.cancel()
                continue
            await asyncio.sleep(self.batch_delay)
            ready += self._take_ready(time.time())
            for entry in ready:
                self._spawn(self._attempt(entry))

    def _take_ready(self, now: float) -> list[Entry]:
        """Due entries, at most one per user; those of a user already being sent to
        wait in ``_waiting`` until that user's attempt ends (:meth:`_attempt`)."""
        taken: list[Entry] = []
        users: set[str] = set()
        while self._heap and self._heap[0][0] <= now and len(taken) < self.max_batch:
            due, eid = heapq.heappop(self._heap)
            entry = self._pending.get(eid)
            if entry is None or entry.due != due or eid in self._running:
                continue  # finished, or rescheduled (its newer heap item stands)
            if entry.user in self._busy or entry.user in users:
                self._waiting.setdefault(entry.user, []).append((due, eid))
                continue
            users.add(entry.user)
            self._running.add(eid)
            self._busy.add(entry.user)
            taken.append(entry)
        return taken

    async def _attempt(self, entry: Entry) -> str:
        self._running.add(entry.id)
        self._busy.add(entry.user)
        try:
            try:
                return await self._try(entry)
            except Exception as exc:  # a bug or the store failing: retried, never stranded
                log.exception("%s notification to %s of mail %s: sending failed unexpectedly; "
                              "it is tried again later", entry.notification.medium,
                              entry.notification.user, entry.notice.shown_id)
                return await self._temporary(entry, f"unexpected error: {exc!r}")
        finally:
            self._running.discard(entry.id)
            self._busy.discard(entry.user)
            for item in self._waiting.pop(entry.user, ()):
                heapq.heappush(self._heap, item)
            self._wake.set()

    async def _prune(self) -> None:
        before = self.runtime.now().timestamp() - max(self.dedup_window.total_seconds(), HOUR)
        try:
            await self._db(self.store.prune, before)
        except Exception as exc:
            log.error("notification queue %s cannot be pruned (%s)", self.path, exc)

    # -- plumbing ----------------------------------------------------------
    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("notification failed", exc_info=task.exception())
