"""The spool worker: builds each deposit's message and delivers it, until it is delivered or parked.

A long-running ``mailcall serve`` service. It wakes when a deposit is accepted,
when a deferred one falls due, and every ``poll_interval`` anyway (so records
put back by ``mailcall spool retry`` from another process are seen).

Failures, per recipient:
- temporary (4xx, refused connection, timeout, a build that crashed): *deferred*,
  retried after ``retry_base * 2**(attempts-1)`` seconds (capped at ``retry_max``,
  ±10 % jitter so a recovered server is not hit by every deposit at once);
  after ``give_up_after`` seconds without success: *parked*;
- permanent (5xx, mailbox no longer in the policy): *parked* at once, logged as
  an error naming the deposit, and listed by ``mailcall spool list``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import multiprocessing
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from mailcall.core.decisions.deposits import Deposit
from mailcall.core.decisions.plans import DepositPlan

from .builder import BuildJob, build
from .delivery import Target, deliver
from .fax_converters import converters_in
from .headers import message_id
from .lifetime import die_with_parent, ignore_stop_signals
from .mail_protocol import Delivered, Failed, dot_stuff
from .seal import deposit_key, needs_resealing
from .spool import Spool, now_utc
from .spool_record import DeliveryResult, SpoolRecord
from .voice_message import Origin

log = logging.getLogger(__name__)


class PlanUnavailable(Exception):
    """The planner cannot answer right now (e.g. the serving process is restarting):
    the deposit is retried later, never parked for it."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    concurrency: int = 4
    """Deliveries under way at once."""
    build_processes: int = 0
    """Processes encoding audio/faxes (0: one per CPU but one, at least 1, at most 4)."""
    retry_base: float = 60.0
    retry_max: float = 3600.0
    give_up_after: float = 5 * 86400.0
    """Park a deposit still failing temporarily after this many seconds (like an MTA's 5 days)."""
    poll_interval: float = 30.0
    delivery_timeout: float = 120.0


BUILD_NICENESS = 10


def _background_priority(parent: int | None = None) -> None:
    """Build processes yield the CPU to the event loop that answers calls.

    SCHED_IDLE (Linux) runs them only on otherwise idle CPU time; elsewhere a
    plain nice value is the best we can ask for. They also die with the process
    that started them and leave stop signals to it (see lifetime.py).
    """
    ignore_stop_signals()
    die_with_parent(parent)
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        os.nice(BUILD_NICENESS)


def default_executor(processes: int = 0) -> Executor:
    # Leave one CPU to the event loop: a burst of voicemail must not slow call routing.
    count = processes or max(1, min((os.cpu_count() or 1) - 1, 4))
    # spawn, not fork: forking a process that runs an event loop and threads is unsafe.
    return ProcessPoolExecutor(
        max_workers=count,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_background_priority,
        initargs=(os.getpid(),),
    )


class SpoolWorker:
    """Delivers what the spool holds. ``planner``, ``origin`` and ``target`` are called for
    every attempt, so a policy reload applies to deposits still waiting."""

    name = "deposit-spool"

    def __init__(
        self,
        spool: Spool,
        *,
        planner: Callable[[Deposit], DepositPlan | Awaitable[DepositPlan]],
        origin: Callable[[], Origin],
        target: Callable[[], Target],
        encoders: Mapping[str, Any],
        settings: WorkerSettings | None = None,
        executor_factory: Callable[[], Executor] | None = None,
        delivered: Callable[[Deposit, DepositPlan, str], object] | None = None,
        recover: bool = True,
    ) -> None:
        self.spool = spool
        self.recover = recover
        """Clean up after a crash at start; False when whoever accepts deposits does it
        (``Spool.recover`` must not run while an accept writes into ``tmp/``)."""
        self.delivered = delivered
        """Told of each delivery (deposit, plan, Message-ID): the mobile notification."""
        self.planner = planner
        self.origin = origin
        self.target = target
        self.encoders = dict(encoders)
        self.settings = settings or WorkerSettings()
        self._executor_factory = executor_factory or partial(
            default_executor, self.settings.build_processes
        )
        self._executor: Executor | None = None
        self._io_thread: ThreadPoolExecutor | None = None
        self._wake = asyncio.Event()
        self._inflight: dict[str, asyncio.Task] = {}
        self._task: asyncio.Task | None = None
        self._stopping = False

    # -- service interface -------------------------------------------------
    async def start(self) -> None:
        try:
            await self._io(self.spool.ensure)
        except OSError as exc:
            raise RuntimeError(self.spool.unusable(exc)) from exc
        if self.recover:
            await self._io(self.spool.recover)
        self._executor = self._executor_factory()
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="deposit-spool")

    async def stop(self, grace: float) -> None:
        self._stopping = True
        self._wake.set()
        if self._inflight:
            _, pending = await asyncio.wait(list(self._inflight.values()), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await self._io(partial(executor.shutdown, wait=True, cancel_futures=True))
        if self._io_thread is not None:
            io_thread, self._io_thread = self._io_thread, None
            io_thread.shutdown(wait=False)

    def wake(self, _sid: str | None = None) -> None:
        self._wake.set()

    async def drain(self, timeout: float) -> None:
        """Wait until nothing is incoming or due and nothing is under way (tests, benchmarks)."""
        async with asyncio.timeout(timeout):
            while True:
                due, _ = await self._io(self._scan)
                if not due and not self._inflight:
                    return
                self._wake.set()
                await asyncio.sleep(0.05)

    # -- the loop ------------------------------------------------------------
    async def _io(self, func, *args):
        # One dedicated thread: spool I/O is fsync-bound and serialised by the disk anyway,
        # and fewer threads means less GIL contention with the loop answering calls.
        if self._io_thread is None:
            self._io_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-io")
        return await asyncio.get_running_loop().run_in_executor(self._io_thread, func, *args)

    def _scan(self) -> tuple[list[str], datetime | None]:
        """Ids due now, and the earliest future retry time."""
        now = now_utc()
        due = list(self.spool.ids("incoming"))
        upcoming: datetime | None = None
        for sid in self.spool.ids("deferred"):
            record = self.spool.load(sid)
            if record is None or record.state != "deferred":
                continue
            at = record.next_attempt or now
            if at <= now:
                due.append(sid)
            elif upcoming is None or at < upcoming:
                upcoming = at
        return due, upcoming

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                due, upcoming = await self._io(self._scan)
            except Exception:  # the worker must outlive any one bad file or disk hiccup
                log.exception("cannot read the spool %s; retrying", self.spool.root)
                due, upcoming = [], None
            for sid in due:
                if len(self._inflight) >= self.settings.concurrency:
                    break
                if sid not in self._inflight:
                    task = asyncio.create_task(self._process(sid), name=f"deposit {sid}")
                    self._inflight[sid] = task
                    task.add_done_callback(partial(self._done, sid))
            wait = self.settings.poll_interval
            if upcoming is not None:
                wait = min(wait, max(0.01, (upcoming - now_utc()).total_seconds()))
            try:
                async with asyncio.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                pass

    def _done(self, sid: str, task: asyncio.Task) -> None:
        self._inflight.pop(sid, None)
        if not task.cancelled() and task.exception() is not None:
            log.error("deposit %s: unexpected error", sid, exc_info=task.exception())
        self._wake.set()

    # -- one deposit -------------------------------------------------------------
    async def _process(self, sid: str) -> None:
        record = await self._io(self.spool.load, sid)
        if record is None or record.state in ("delivered", "parked"):
            return
        try:
            started = await self._start_attempt(record)
            if started is None:
                return
            record, plan, origin = started  # from here on, the record notes the attempt
            await self._attempt(sid, record, plan, origin)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # A bug must not turn into a busy loop on one deposit: back off like a 4xx.
            log.exception("deposit %s: unexpected error; will retry", sid)
            await self._temporary(record, f"internal error: {exc!r}")

    async def _start_attempt(
            self, record: SpoolRecord) -> tuple[SpoolRecord, DepositPlan, Origin] | None:
        """The plan, and the record noting one more attempt; None if the plan decided."""
        deposit = record.deposit
        try:
            planned = self.planner(deposit)
            plan = await planned if inspect.isawaitable(planned) else planned
        except PlanUnavailable as exc:
            await self._temporary(record, f"no delivery plan yet: {exc}")
            return None
        except Exception as exc:
            await self._park(record, f"no delivery plan for mailbox {deposit.mailbox!r}: {exc}")
            return None
        origin = self.origin()
        # Durable note that an attempt is under way: after a crash, `attempts` shows that
        # this deposit may have reached the server (see docs/deposit.md, "Exactly once").
        # Once given, a deposit's Message-ID never changes (a later domain change, a
        # rebuild): it is what Dovecot's duplicate test knows it by.
        mid = record.message_id or message_id(
            record.kind, deposit.mailbox, deposit.call_id, origin.domain,
            key=deposit_key(self.spool.root),
        )
        noted = replace(record, message_id=mid, attempts=record.attempts + 1,
                        last_attempt_at=now_utc())
        return noted, plan, origin

    async def _attempt(self, sid: str, record: SpoolRecord, plan: DepositPlan,
                       origin: Origin) -> None:
        deposit, mid = record.deposit, record.message_id
        assert mid is not None, "_start_attempt sets it"
        message_path = self.spool.message_path(sid)

        def note_attempt() -> bool:  # one thread hop instead of two
            self.spool.save(record, record.state)
            # Built long ago (Dovecot was down): rebuild, so its token is fresh (seal.py).
            return message_path.exists() and not needs_resealing(message_path)

        if not await self._io(note_attempt):
            encoder = self.encoders.get(plan.audio_format) if plan.kind == "voice" else None
            if plan.kind == "voice" and encoder is None:
                log.warning(
                    "deposit %s: no encoder offers %r; attaching WAV", sid, plan.audio_format
                )
            fax = converters_in(self.encoders) if plan.kind == "fax" else None
            job = BuildJob(str(self.spool.root), record, plan, origin, encoder, fax or None)
            try:
                await asyncio.get_running_loop().run_in_executor(self._executor, build, job)
            except BrokenProcessPool as exc:
                self._executor = self._executor_factory()
                await self._temporary(record, f"the build process died ({exc})")
                return
            except Exception as exc:
                log.exception("deposit %s: building the message failed", sid)
                await self._temporary(record, f"building the message failed: {exc!r}")
                return
        # The "delivered" record is written and fsynced *before* the message is sent; after
        # the server's 250 it only has to be renamed into place, at once, on the event loop.
        # The crash window between the server's commit and our record is that one rename
        # (see docs/deposit.md, "Exactly once").
        delivered = replace(
            record, last_error="", notify_pending=bool(plan.notify),
            results=(DeliveryResult(plan.recipient, "delivered", "2xx", now_utc()),))

        def load_and_prepare() -> tuple[bytes, Path]:
            wire_path = self.spool.wire_path(sid)
            try:  # dot-stuffed by the build process: nothing CPU-bound left here
                wire = wire_path.read_bytes()
            except FileNotFoundError:
                wire = dot_stuff(message_path.read_bytes())
            return wire, self.spool.prepare(delivered, "delivered")

        message, prepared = await self._io(load_and_prepare)

        async def on_delivered(event: Delivered) -> None:
            self.spool.commit(prepared, "delivered", sid)
            final = replace(delivered, results=(
                DeliveryResult(event.recipient, "delivered", str(event.reply), now_utc()),))
            await self._io(self.spool.save, final, "delivered")
            log.info("deposit %s delivered to %s: %s", sid, event.recipient, event.reply)
            if self.delivered is not None:
                try:
                    accepted = self.delivered(deposit, plan, mid)
                except Exception:
                    log.exception("deposit %s: delivered, but notifying the mobile failed", sid)
                else:
                    if plan.notify:  # else no promise was written
                        self.spool.notified_when(accepted, sid)

        try:
            events = await deliver(
                self.target(),
                sender=origin.sender,
                recipients=[plan.recipient],
                message=message,
                on_delivered=on_delivered,
                timeout=self.settings.delivery_timeout,
                stuffed=True,
            )
        finally:
            prepared.unlink(missing_ok=True)
        for event in events:
            if isinstance(event, Failed):
                failed = replace(record, results=(DeliveryResult(
                    event.recipient, "permanent" if event.permanent else "temporary",
                    event.reason, now_utc()),))
                if event.permanent:
                    await self._park(failed, f"{event.recipient} refused: {event.reason}")
                else:
                    await self._temporary(failed, f"{event.recipient}: {event.reason}")

    async def _temporary(self, record: SpoolRecord, why: str) -> None:
        age = (now_utc() - record.accepted_at).total_seconds()
        if age > self.settings.give_up_after:
            await self._park(record, f"still failing after {age / 3600:.0f} h: {why}")
            return
        attempts = max(1, record.attempts)
        delay = min(self.settings.retry_base * 2 ** (attempts - 1), self.settings.retry_max)
        delay *= random.uniform(0.9, 1.1)
        deferred = replace(record, last_error=why,
                           next_attempt=now_utc() + timedelta(seconds=delay))
        await self._io(self.spool.save, deferred, "deferred")
        log.warning(
            "deposit %s deferred (attempt %d), next try in %.0f s: %s",
            record.id,
            attempts,
            delay,
            why,
        )

    async def _park(self, record: SpoolRecord, why: str) -> None:
        parked = replace(record, last_error=why, next_attempt=None)
        await self._io(self.spool.save, parked, "parked")
        log.error(
            "deposit %s PARKED, it will not be retried automatically: %s. Fix the cause, then run "
            "'mailcall spool retry %s'",
            record.id,
            why,
            record.id,
        )
