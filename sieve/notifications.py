"""Carrying out Notify actions after Dovecot has had its answer.

The bridge answers Dovecot first and queues the notification here, so a slow
SMS gateway or webhook never holds a delivery. The dispatcher owns the state
that must be per running server, never per module: the de-duplication memory
(one notification per Message-ID and user, even when the MTA retries a
delivery or a mail is addressed twice) and the per-user hourly rate limit
(``channels.rate_limit_per_hour``). It honours the medium the plan chose (the
user's preferred one) and never switches to another silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mailcall.core.plans import Notify
from mailcall.core.runtime import Runtime

log = logging.getLogger("mailcall.sieve.notify")

_TEXT = {
    "fr": ("Nouveau courriel de {sender}", "De : {sender}\nObjet : {subject}"),
    "en": ("New mail from {sender}", "From: {sender}\nSubject: {subject}"),
}
_BULK = ("bulk", "list", "junk")
_ROBOTS = ("mailer-daemon", "postmaster")


@dataclass(frozen=True, slots=True)
class MailNotice:
    """What the dispatcher needs to tell a user about one delivered mail."""

    notifications: tuple[Notify, ...]
    recipient: str
    sender: str
    """Envelope sender."""
    message_id: str = ""
    subject: str = ""
    from_header: str = ""
    auto_submitted: str = ""
    list_id: str = ""
    precedence: str = ""


def loop_risk(notice: MailNotice, own_sender: str) -> str | None:
    """Why notifying about this mail could start a loop (RFC 3834 section 2), or None."""
    auto = notice.auto_submitted.strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if notice.list_id.strip():
        return "List-Id present"
    if notice.precedence.strip().lower() in _BULK:
        return f"Precedence: {notice.precedence.strip()}"
    sender = notice.sender.strip().lower()
    if not sender or sender.split("@")[0] in _ROBOTS:
        return "null or robot envelope sender"
    if sender == own_sender.lower():
        return "sent by mailcall itself"
    return None


@dataclass
class _Memory:
    seen: OrderedDict[tuple[str, str], datetime] = field(default_factory=OrderedDict)
    sent: dict[str, deque[datetime]] = field(default_factory=dict)


class Dispatcher:
    """Queue and send notifications for one runtime; bounded in memory and in time."""

    max_seen = 20000
    dedup_window = timedelta(days=2)
    send_timeout = 30.0
    batch_delay = 0.05
    max_batch = 200

    def __init__(self, runtime: Runtime, channels: list[Any], *, queue_size: int = 1000,
                 workers: int = 1) -> None:
        self.runtime = runtime
        self.channels: dict[str, Any] = {}
        for channel in channels:
            self.channels.setdefault(channel.medium, channel)
        self._audit = [c for c in channels if hasattr(c, "audit")]
        self._memory = _Memory()
        self._queue: asyncio.Queue[MailNotice] = asyncio.Queue(queue_size)
        self._workers_wanted = workers
        self._workers: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._workers = [asyncio.create_task(self._work(), name=f"notify-{n}")
                         for n in range(self._workers_wanted)]

    async def stop(self, grace: float) -> None:
        """Let queued notifications go out for at most `grace` seconds; drop the rest loudly."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._queue.join()
        left = self._queue.qsize()
        if left:
            log.error("stopping with %d notification(s) not sent (grace %.1fs over)", left, grace)
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    def submit(self, notice: MailNotice) -> bool:
        """Queue `notice`; False (and an error in the log) when the queue is full."""
        try:
            self._queue.put_nowait(notice)
        except asyncio.QueueFull:
            log.error("notification queue full (%d): not notifying %s of mail %s",
                      self._queue.maxsize, notice.recipient, notice.message_id or "(no id)")
            return False
        return True

    async def _work(self) -> None:
        # Notifications are not urgent, deliveries are: gather what arrives within
        # `batch_delay` and send it together, so that a busy server wakes up (and
        # writes its audit file) once per batch rather than once per mail.
        while True:
            batch = [await self._queue.get()]
            try:
                await asyncio.sleep(self.batch_delay)
                while len(batch) < self.max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                await asyncio.gather(*(self._dispatch_logged(n) for n in batch))
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _dispatch_logged(self, notice: MailNotice) -> None:
        try:
            await self.dispatch(notice)
        except Exception:
            log.exception("notification for %s failed", notice.recipient)

    async def dispatch(self, notice: MailNotice) -> list[str]:
        """Send every notification of `notice` now; returns one outcome word per notification."""
        policy = self.runtime.policy
        own = policy.delivery.sender or f"mailcall@{policy.organisation.domain}"
        risk = loop_risk(notice, own)
        outcomes = []
        for notification in notice.notifications:
            outcome = "skipped: " + risk if risk else await self._one(notice, notification)
            outcomes.append(outcome)
            await self._record(notice, notification, outcome)
        return outcomes

    async def _one(self, notice: MailNotice, notification: Notify) -> str:
        now = self.runtime.now()
        key = (notification.user, notice.message_id.strip().lower())
        if key[1]:
            self._forget_old(now)
            if key in self._memory.seen:
                return "duplicate"
        limit = self.runtime.policy.channels.rate_limit_per_hour
        sent = self._memory.sent.setdefault(notification.user, deque())
        while sent and now - sent[0] >= timedelta(hours=1):
            sent.popleft()
        if len(sent) >= limit:
            log.warning("rate limit: %s already had %d notifications this hour",
                        notification.user, limit)
            return "rate-limited"
        channel = self.channels.get(notification.medium)
        if channel is None:
            log.error("no channel for medium %r (user %s): enable the plugin that provides it",
                      notification.medium, notification.user)
            return "no-channel"
        if key[1]:
            self._memory.seen[key] = now
        sent.append(now)
        subject, text = self.render(notification, notice)
        try:
            async with asyncio.timeout(self.send_timeout):
                await channel.send(notification, subject, text)
        except Exception as exc:
            log.error("%s notification to %s failed: %s", notification.medium, notification.user,
                      exc)
            return f"failed: {exc}"
        log.info("notified %s by %s of mail %s", notification.user, notification.medium,
                 notice.message_id or "(no id)")
        return "sent"

    def _forget_old(self, now: datetime) -> None:
        seen = self._memory.seen
        while seen and (len(seen) > self.max_seen
                        or now - next(iter(seen.values())) > self.dedup_window):
            seen.popitem(last=False)

    def render(self, notification: Notify, notice: MailNotice) -> tuple[str, str]:
        user = self.runtime.policy.users.get(notification.user)
        lang = user.language if user and user.language in _TEXT else "en"
        subject_t, text_t = _TEXT[lang]
        sender = _short(notice.from_header or notice.sender, 100)
        subject = _short(notice.subject, 160)
        return subject_t.format(sender=sender), text_t.format(sender=sender, subject=subject)

    async def _record(self, notice: MailNotice, notification: Notify, outcome: str) -> None:
        record = {"event": "mail-notification", "at": self.runtime.now().isoformat(),
                  "user": notification.user, "medium": notification.medium,
                  "message_id": notice.message_id, "outcome": outcome}
        for channel in self._audit:
            try:
                await channel.audit(record)
            except Exception as exc:
                log.error("audit record not written by %s: %s", type(channel).__name__, exc)


def _short(value: str, limit: int) -> str:
    text = " ".join("".join(ch if ch >= " " else " " for ch in value).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
