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
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from mailcall.core.contracts import VoiceCounts
from mailcall.core.host.runtime import Runtime
from mailcall.core.text import display_text

from .channel import Auditor, Channel, is_temporary
from .notice import MailNotice, loop_risk
from .relay import sender_address
from .retry import Retry
from .store import Entry, Store, StoreError
from .wording import render

log = logging.getLogger("mailcall.notifications")

T = TypeVar("T")
HOUR = 3600.0
VOICE_COUNTS_WAIT = 2.0
"""Seconds a voicemail's notification waits for the lamp's recount (normally a few ms)."""


class Dispatcher:
    """The notification service of one runtime: queue, send, retry; bounded in size and time.

    It is the ``runtime.notifier`` the Sieve bridge and the deposit worker
    share, so that one rate limit and one de-duplication memory cover
    everything a user's mobile receives.
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
        for channel in channels:
            self.channels.setdefault(channel.medium, channel)
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

    @property
    def path(self) -> Path:
        return self.store.path

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

    async def _try(self, entry: Entry) -> str:
        notice, n = entry.notice, entry.notification
        late = time.time() - entry.accepted
        if late > self.retry.deadline:  # e.g. found at a restart: news of old mail is noise
            last = f"; last error: {entry.last_error}" if entry.last_error else ""
            return await self._give_up(
                entry, f"not sent within the {_duration(self.retry.deadline)} deadline "
                f"(accepted {_duration(late)} ago; was mailcall stopped?){last}")
        policy = self.runtime.policy
        now = self.runtime.now()
        at = now.timestamp()
        history = await self._db(self.store.history, n.user, notice.dedupe_key,
                                 at - self.dedup_window.total_seconds(), at - HOUR)
        if history.duplicate:
            return await self._finish(entry, "duplicate")
        limit = policy.channels.rate_limit_per_hour
        if history.last_hour >= limit:
            return await self._limited(entry, now, history.oldest, limit)
        channel = self.channels.get(n.medium)
        if channel is None:
            log.error("no channel for medium %r (user %s): not notified of mail %s; enable "
                      "the plugin that provides it, or change the user's preferred_medium",
                      n.medium, n.user, notice.shown_id)
            return await self._finish(entry, "no-channel")
        voice = await self._voice_counts(n.user) if notice.kind == "voice" else None
        subject, text = render(policy, n, notice, voice)
        entry.attempts += 1
        try:
            async with asyncio.timeout(self.send_timeout):
                receipt = await channel.send(n, subject, text)
        except Exception as exc:
            reason = display_text(str(exc) or type(exc).__name__, 400)
            if isinstance(exc, TimeoutError):
                reason = f"no answer within {self.send_timeout:.0f}s"
            if is_temporary(channel, exc):
                return await self._temporary(entry, reason)
            log.error("%s notification to %s of mail %s failed for good: %s. Not retried: "
                      "fix the cause (the address, or the gateway, relay or webhook settings "
                      "under [channels]); the mail itself is in the mailbox",
                      n.medium, n.user, notice.shown_id, reason)
            return await self._finish(entry, f"failed: {reason}")
        try:
            await self._db(self.store.mark_sent, entry, at)
        except Exception as exc:  # sent, but not recorded: a restart would send it again
            log.error("%s notification to %s sent, but not recorded in %s (%s): it may be "
                      "sent again after a restart", n.medium, n.user, self.path, exc)
        self._pending.pop(entry.id, None)
        again = f" (attempt {entry.attempts})" if entry.attempts > 1 else ""
        log.info("notified %s by %s of mail %s%s: %s", n.user, n.medium, notice.shown_id,
                 again, display_text(receipt, 300) if receipt else "sent")
        await self._record(notice, "sent", entry.attempts)
        return "sent"

    async def _voice_counts(self, user: str) -> VoiceCounts | None:
        """The lamp's counts for a voicemail's notification, or None (no lamp running, the
        folder unreadable, or no answer within VOICE_COUNTS_WAIT: the words then leave the
        count out rather than delay the news or guess)."""
        try:
            pending = self.runtime.pm.hook.mailcall_voice_counts(runtime=self.runtime,
                                                                 user=user)
            if pending is None:
                return None
            async with asyncio.timeout(VOICE_COUNTS_WAIT):
                got = await pending
        except TimeoutError:
            return None
        except Exception:
            log.exception("the voice counts of %s could not be read for a notification", user)
            return None
        return got if isinstance(got, VoiceCounts) else None

    async def _temporary(self, entry: Entry, reason: str) -> str:
        n, notice = entry.notification, entry.notice
        delay = self.retry.delay(entry.attempts)
        due = time.time() + delay
        if due > entry.accepted + self.retry.deadline:
            return await self._give_up(entry, reason)
        entry.due, entry.last_error = due, reason
        try:
            await self._db(self.store.reschedule, entry.id, entry.attempts, due, reason)
        except Exception as exc:
            log.error("notification queue %s cannot be written (%s)", self.path, exc)
        heapq.heappush(self._heap, (due, entry.id))
        log.warning("%s notification to %s of mail %s not sent (attempt %d): %s; next attempt "
                    "in %s", n.medium, n.user, notice.shown_id, entry.attempts, reason,
                    _duration(delay))
        return f"retrying: {reason}"

    async def _give_up(self, entry: Entry, reason: str) -> str:
        """Past the deadline (:attr:`Retry.deadline`): said once, at ERROR; the entry goes."""
        n = entry.notification
        waited = _duration(time.time() - entry.accepted)
        log.error("%s notification to %s of mail %s given up after %d attempts over %s: "
                  "%s. Check that the relay or gateway under [channels] is up and "
                  "reachable; the mail itself is in the mailbox",
                  n.medium, n.user, entry.notice.shown_id, entry.attempts, waited, reason)
        return await self._finish(
            entry, f"failed: gave up after {entry.attempts} attempts: {reason}")

    async def _limited(self, entry: Entry, now: datetime, oldest: float | None,
                       limit: int) -> str:
        n = entry.notification
        until = (oldest if oldest is not None else now.timestamp()) + HOUR
        first = await self._db(self.store.note_limit, n.user, now.timestamp(), until)
        if first:
            again = datetime.fromtimestamp(until, now.tzinfo).strftime("%H:%M")
            log.warning("rate limit: %s already had %d notifications this hour ([channels] "
                        "rate_limit_per_hour = %d); more are not sent, and not logged again, "
                        "until %s", n.user, limit, limit, again)
            return await self._finish(entry, "rate-limited")
        log.debug("rate limit: %s not notified of mail %s", n.user, entry.notice.shown_id)
        return await self._finish(entry, "rate-limited", audit=False)

    async def _finish(self, entry: Entry, outcome: str, *, audit: bool = True) -> str:
        """Done with `entry` without a send: it leaves the queue, and counts for nothing."""
        self._pending.pop(entry.id, None)
        try:
            await self._db(self.store.remove, entry.id)
        except Exception as exc:
            log.error("notification queue %s cannot be written (%s)", self.path, exc)
        if audit:
            await self._record(entry.notice, outcome, entry.attempts)
        return outcome

    async def _record(self, notice: MailNotice, outcome: str, attempts: int) -> None:
        n = notice.notifications[0]
        record = {"event": "mail-notification", "at": self.runtime.now().isoformat(),
                  "user": n.user, "medium": n.medium, "message_id": notice.message_id,
                  "outcome": outcome, "attempts": attempts}
        for channel in self._audit:
            try:
                await channel.audit(record)
            except Exception as exc:
                log.error("audit record not written by %s: %s", type(channel).__name__, exc)

    async def _prune(self) -> None:
        before = self.runtime.now().timestamp() - max(self.dedup_window.total_seconds(), HOUR)
        try:
            await self._db(self.store.prune, before)
        except Exception as exc:
            log.error("notification queue %s cannot be pruned (%s)", self.path, exc)

    # -- plumbing ----------------------------------------------------------
    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store method on the queue's own thread (SQLite blocks, the loop must not)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="notifications-db")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("notification failed", exc_info=task.exception())


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
