"""What one attempt at a notification ends in: sent, duplicate, rate-limited, retried, given up.

The rules of a single send, apart from the queue they work on: the
:class:`~mailcall.notifications.dispatcher.Dispatcher` accepts notifications
durably and schedules them (one user at a time), then hands each due entry to
:meth:`Sending._try`. Every outcome is written to the store and to the audit
channels here, and said to the admin once, with what to do.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from mailcall.core.contracts import VoiceCounts
from mailcall.core.host.runtime import Runtime
from mailcall.core.host.voice_counts import read_voice_counts
from mailcall.core.text import display_text

from .channel import Auditor, Channel, is_temporary
from .notice import MailNotice
from .retry import Retry
from .store import Entry, Store
from .wording import render

log = logging.getLogger("mailcall.notifications")

T = TypeVar("T")
HOUR = 3600.0
VOICE_COUNTS_WAIT = 2.0
"""Seconds a voicemail's notification waits for the lamp's recount (normally a few ms)."""


class Sending:
    """The send half of the :class:`~mailcall.notifications.dispatcher.Dispatcher`.

    The attributes below are the dispatcher's: its queue in memory and on disk.
    """

    runtime: Runtime
    channels: dict[str, Channel]
    temporary: dict[str, tuple[type[BaseException], ...]]
    retry: Retry
    store: Store
    dedup_window: timedelta
    send_timeout: float
    _audit: list[Auditor]
    _pending: dict[int, Entry]
    _heap: list[tuple[float, int]]
    _executor: ThreadPoolExecutor | None

    @property
    def path(self) -> Path:
        return self.store.path

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
            if is_temporary(self.temporary[n.medium], exc):
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
        return await read_voice_counts(self.runtime, user, wait=VOICE_COUNTS_WAIT,
                                       purpose="a voicemail notification",
                                       instead="the notification leaves the count out")

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

    async def _db(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a store method on the queue's own thread (SQLite blocks, the loop must not)."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="notifications-db")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
