"""The ``deposit-spool`` service: the spool worker in a child process, started, watched, restarted.

Why a child process: call routing must not slow down while voicemails are
built and delivered, and inside the FastAGI process the worker's threads and
its share of the event loop compete with routing for the GIL and the CPUs; at
nice +10 in a process of its own they do not (docs/deposit.md, "Off the
loop", has the measurements). The child runs
:mod:`~mailcall.deposit.delivery_child`; the two talk through
:mod:`~mailcall.deposit.pipe_protocol`.

This side holds the spool for the serving process (``Spool.lock``), recovers
crash leftovers while no child runs, answers the child's plan requests with
the policy of the moment and passes each delivery on (the mobile notification;
both in :mod:`~mailcall.deposit.delivery_answers`), and keeps a child running:
one that dies is started again after a growing delay, one that stops answering
is killed. Everything a child was doing is in the spool, so the usual recovery
applies ("Exactly once" in docs/deposit.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from mailcall.core.decisions.deposits import Deposit
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.errors import ServiceStartError

from . import delivery_child
from . import pipe_protocol as pipe
from .delivery import Target
from .delivery_answers import DeliveryAnswers
from .lifetime import how_it_ended
from .spool import Spool
from .spool_depositor import SpoolDepositor
from .spool_lock import SpoolBusy
from .voice_message import Origin
from .worker import WorkerSettings

log = logging.getLogger(__name__)

DELIVERY_NICENESS = 10
"""Added to the delivery process's nice value: call routing comes first."""
START_TIMEOUT = 60.0
WAKE_TIMEOUT = 60.0
"""A child whose loop has not read a wake-up for this long is wedged: it is killed."""
STOP_MARGIN = 5.0
"""Beyond the stop grace, before a child that does not stop is killed."""
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Seconds before starting a child that died again; back to the start after a calm minute."""
CALM = 60.0
"""A child that ran this long before dying starts the delays over."""


class DeliveryProcess(DeliveryAnswers):
    """The ``deposit-spool`` service of ``mailcall serve``: starts and watches the child."""

    name = "deposit-spool"

    def __init__(
        self,
        spool: Spool,
        *,
        planner: Callable[[Deposit], DepositPlan],
        origin: Callable[[], Origin],
        target: Callable[[], Target],
        encoders: Mapping[str, Any],
        settings: WorkerSettings | None = None,
        delivered: Callable[[Deposit, DepositPlan, str], object] | None = None,
        depositor: SpoolDepositor | None = None,
        niceness: int = DELIVERY_NICENESS,
    ) -> None:
        self.spool = spool
        self.planner = planner
        self.origin = origin
        self.target = target
        self.encoders = dict(encoders)
        self.settings = settings or WorkerSettings()
        self.delivered = delivered
        """Told of each delivery (deposit, plan, Message-ID): the mobile notification. It may
        return the notifier's future, True once the notice is on disk: until then the
        delivered record keeps ``notify_pending`` and is handed over again at start."""
        self.depositor = depositor
        """The one accepting into this spool, if any: crash recovery runs on its thread."""
        self.niceness = niceness
        self.process: multiprocessing.process.BaseProcess | None = None
        self._end = pipe.PipeEnd(pipe.Side.SERVE)
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[None] | None = None
        self._exited: asyncio.Future[None] | None = None
        self._drains: dict[int, asyncio.Future[str | None]] = {}
        self._ids = itertools.count(1)
        self._wake_sent = False
        self._wake_again = False
        self._wake_watch: asyncio.TimerHandle | None = None
        self._stopping = False
        self._restarts = 0
        self._started_at = 0.0
        self._restart: asyncio.TimerHandle | None = None
        self._respawning: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._lock: int | None = None
        """Holds the spool for this process while it serves (Spool.lock)."""

    # -- service interface ---------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        try:
            try:
                # On the loop, not in a thread: a few system calls at start, and a
                # cancelled start can then never leave the lock held by nobody.
                self._lock = self.spool.lock()
            except SpoolBusy as exc:
                raise _NotStarted(str(exc)) from None
            except OSError as exc:
                raise _NotStarted(self.spool.unusable(exc)) from exc
            await self._spawn()
        except BaseException:
            self._stopping = True  # serve reports it and stops: no restart behind its back
            if self._restart is not None:
                self._restart.cancel()
                self._restart = None
            self._unlock()
            raise

    def _unlock(self) -> None:
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    async def stop(self, grace: float) -> None:
        try:
            await self._stop_child(grace)
        finally:
            self._unlock()  # only once no child of ours can touch the spool

    async def _stop_child(self, grace: float) -> None:
        self._stopping = True
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        respawning = self._respawning
        if respawning is not None:  # a restart under way: let it finish within the grace
            done, _ = await asyncio.wait({respawning}, timeout=grace)
            if not done:
                respawning.cancel()  # kills the half-started child
                await asyncio.gather(respawning, return_exceptions=True)
        process, exited = self.process, self._exited
        if process is None or exited is None:
            return
        self._send(pipe.Stop(grace))
        deadline = time.monotonic() + grace + STOP_MARGIN
        try:
            await asyncio.wait_for(asyncio.shield(exited), grace + STOP_MARGIN)
            # Its pipe closes a moment before the process is gone: wait for that too.
            while process.is_alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        except TimeoutError:
            pass
        if process.is_alive():
            log.error("the delivery process (pid %s) did not stop within %.0f s: killed; "
                      "deliveries it had under way are retried at next start",
                      process.pid, grace + STOP_MARGIN)
            process.kill()
            await exited
            await asyncio.to_thread(process.join, 5)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def wake(self, _sid: str | None = None) -> None:
        """A deposit was accepted. At most one wake-up is in flight: the child scans the
        whole spool when it wakes, and the pipe must never fill up."""
        if self._wake_sent:
            self._wake_again = True
            return
        if self._send(pipe.Wake()):
            self._wake_sent = True
            if self._loop is not None:
                self._wake_watch = self._loop.call_later(WAKE_TIMEOUT, self._wedged,
                                                         self.process)

    async def drain(self, timeout: float) -> None:
        """Wait until the child has nothing incoming, due or under way (tests, benchmarks)."""
        number = next(self._ids)
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self._drains[number] = future
        try:
            if not self._send(pipe.Drain(number, timeout)):
                raise RuntimeError("the delivery process is not running")
            error = await asyncio.wait_for(future, timeout + 5.0)
        finally:
            self._drains.pop(number, None)
        if error is not None:
            raise TimeoutError(f"the delivery process did not drain: {error}")

    # -- the child -------------------------------------------------------------
    async def _spawn(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            await asyncio.to_thread(self.spool.ensure)
            await self._recover()
        except OSError as exc:
            raise _NotStarted(self.spool.unusable(exc)) from exc
        try:
            process, here = delivery_child.start(self.spool.root, self.settings, self.encoders,
                                                 self.niceness)
        except Exception as exc:  # e.g. ENOMEM right after the OOM killer took the last one
            raise _NotStarted(f"cannot start the delivery process: {exc}") from exc
        self.process, self._conn = process, here
        self._ready = loop.create_future()
        self._exited = loop.create_future()
        self._wake_sent = self._wake_again = False
        self._started_at = time.monotonic()
        loop.add_reader(here.fileno(), self._readable)
        loop.add_reader(process.sentinel, self._child_exited)
        try:
            await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT)
        except TimeoutError:
            process.kill()
            raise _StartTimedOut(
                f"the delivery process did not start within {START_TIMEOUT:.0f} s; the "
                "lines above (logger mailcall.deposit) say what it was doing") from None
        except asyncio.CancelledError:  # stop() gave up waiting for a restart
            process.kill()
            raise
        log.info("delivery process started (pid %d, nice +%d)", process.pid, self.niceness)
        self.wake()  # deposits accepted while no child ran

    def _send(self, message: pipe.Message) -> bool:
        conn = self._conn
        if conn is None:
            return False
        frame = self._end.encode(message)
        try:
            conn.send_bytes(frame)
        except (OSError, ValueError):
            return False
        return True

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                frame = conn.recv_bytes()
                try:
                    message = self._end.decode(frame)
                except pipe.PipeProtocolError as exc:
                    log.error("the delivery process (pid %s) sent a message mailcall serve "
                              "cannot read (%s): ignored. If mailcall was upgraded while it "
                              "was serving, restart it (systemctl restart mailcall)",
                              self.process.pid if self.process else "?", exc)
                    continue
                try:
                    self._handle(message)
                except Exception:
                    log.exception("the delivery process sent %s; handling it failed",
                                  type(message).__name__)
        except (EOFError, OSError):
            self._loop.remove_reader(conn.fileno())  # type: ignore[union-attr]

    def _handle(self, message: pipe.Message) -> None:
        if isinstance(message, pipe.PlanRequest):
            self._give_plan(message)
        elif isinstance(message, pipe.DepositDelivered):
            self._passed_on(message)
        elif isinstance(message, pipe.Awake):
            self._wake_sent = False
            if self._wake_watch is not None:
                self._wake_watch.cancel()
                self._wake_watch = None
            if self._wake_again:
                self._wake_again = False
                self.wake()
        elif isinstance(message, pipe.Drained):
            future = self._drains.get(message.number)
            if future is not None and not future.done():
                future.set_result(message.error)
        elif isinstance(message, pipe.Ready):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif isinstance(message, pipe.StartFailed):
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(RuntimeError(message.reason))

    def _wedged(self, process: multiprocessing.process.BaseProcess | None) -> None:
        self._wake_watch = None
        if process is None or process is not self.process or not process.is_alive():
            return
        log.error("the delivery process (pid %s) has not answered a wake-up for %.0f s: "
                  "killing it; it will be started again and deliver what the spool holds",
                  process.pid, WAKE_TIMEOUT)
        process.kill()

    def _child_exited(self) -> None:
        loop, process, conn = self._loop, self.process, self._conn
        assert loop is not None and process is not None
        loop.remove_reader(process.sentinel)
        if self._wake_watch is not None:
            self._wake_watch.cancel()
            self._wake_watch = None
        if conn is not None:
            with contextlib.suppress(EOFError, OSError):
                self._readable()  # what it said last (start-failed, drained...)
            with contextlib.suppress(ValueError, OSError):
                loop.remove_reader(conn.fileno())
            conn.close()
        self._conn = None
        for future in self._drains.values():
            if not future.done():
                future.set_result("the delivery process exited")
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(RuntimeError(
                "the delivery process exited while starting; its error is in the log above"))
        if self._exited is not None and not self._exited.done():
            self._exited.set_result(None)
        if not self._stopping:
            task = loop.create_task(self._after_crash(process))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _after_crash(self, process: multiprocessing.process.BaseProcess) -> None:
        """Say how it ended (once it can be reaped), then start it again after a delay."""
        for _ in range(100):
            if not process.is_alive():
                break
            await asyncio.sleep(0.02)
        if self._stopping:
            return
        if time.monotonic() - self._started_at > CALM:
            self._restarts = 0
        delay = RESTART_DELAYS[min(self._restarts, len(RESTART_DELAYS) - 1)]
        self._restarts += 1
        log.error("the delivery process (pid %s) %s; deposits wait in the spool %s; "
                  "starting it again in %.0f s", process.pid, how_it_ended(process.exitcode),
                  self.spool.root, delay)
        self._restart = self._loop.call_later(delay, self._respawn)  # type: ignore[union-attr]

    def _respawn(self) -> None:
        self._restart = None
        if self._stopping:
            return
        self._respawning = self._loop.create_task(self._respawn_now())  # type: ignore[union-attr]

    async def _respawn_now(self) -> None:
        try:
            await self._spawn()
        except _NotStarted as exc:  # no child, so no exit to react to: try again later
            log.error("%s; deposits wait in the spool %s; trying again in %.0f s",
                      exc, self.spool.root, RESTART_DELAYS[-1])
            if not self._stopping:
                self._restart = self._loop.call_later(  # type: ignore[union-attr]
                    RESTART_DELAYS[-1], self._respawn)
        except Exception as exc:  # the child's exit schedules the next attempt
            log.error("cannot start the delivery process: %s", exc)
        finally:
            self._respawning = None


class _NotStarted(ServiceStartError):
    """The child could not even be started (the spool is unusable)."""


class _StartTimedOut(ServiceStartError):
    """The child started but never said it was ready; it was killed, and its exit
    schedules the next attempt (so not a _NotStarted, which schedules one itself)."""
