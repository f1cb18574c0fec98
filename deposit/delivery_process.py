"""The spool worker in a process of its own, at a lower CPU priority than call routing.

Why a process: ``bench/deposit/bench_offloop.py`` (docs/deposit.md, "Off the
loop") showed that with the worker inside the FastAGI process, a burst of 20
voicemails stalled the event loop for 3–6 ms a dozen times: not one long
callback (asyncio's slow-callback report stayed silent) but the worker's own
threads (spool I/O, the build pool's feeder and manager) and its share of the
loop competing with call routing for the GIL and for the two CPUs. Dovecot was
not the cause (0.1 s of CPU for the whole burst), nor were the encoders (they
already run at ``SCHED_IDLE``; a CPU hog at normal priority did not move the
p99 either). With the same worker in a child process at nice 10, the FastAGI
p99 during the burst went from 2.3–2.6× its idle value to 1.76–1.88× (median
of 3 rounds; single rounds from 1.4 to 2.3).

Who does what:

* the serving process accepts deposits into the spool (durable before the
  caller hears goodbye: :class:`~mailcall.deposit.spool.SpoolDepositor`), and
  keeps the policy and the plugins: it answers every "plan" request of the
  child (``plan_deposit`` plus the ``mailcall_after_decision`` audit hook,
  with the policy of the moment, so a reload applies to waiting deposits), and
  it is told of each delivery (the mobile notification goes through the one
  dispatcher of the server, with its rate limit);
* the child runs the :class:`~mailcall.deposit.worker.SpoolWorker`: scans,
  builds (in its ``SCHED_IDLE`` build processes), delivers and records.

Messages are small tuples over a ``multiprocessing`` pipe, read by each side's
event loop (``add_reader``): no thread is added to the serving process. The child dies
with its parent (``PR_SET_PDEATHSIG``), as the worker used to when it lived in
it, and a child that dies is started again after a delay; everything it was
doing is in the spool, so the usual recovery applies ("Exactly once" in
docs/deposit.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from mailcall.core.deposits import Deposit
from mailcall.core.errors import ServiceStartError
from mailcall.core.plans import DepositPlan

from .delivery import Target
from .spool import Spool, SpoolBusy, SpoolDepositor
from .voice_message import Origin
from .worker import PlanUnavailable, SpoolWorker, WorkerSettings

log = logging.getLogger(__name__)

DELIVERY_NICENESS = 10
"""Added to the delivery process's nice value: call routing comes first."""
START_TIMEOUT = 60.0
PLAN_TIMEOUT = 30.0
WAKE_TIMEOUT = 60.0
"""A child whose loop has not read a wake-up for this long is wedged: it is killed."""
STOP_MARGIN = 5.0
"""Beyond the stop grace, before a child that does not stop is killed."""
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
"""Seconds before starting a child that died again; back to the start after a calm minute."""

_PR_SET_PDEATHSIG = 1


# ------------------------------------------------------------------- the child


def die_with_parent(parent: int | None = None) -> None:
    """Ask Linux to kill this process when its parent goes, however it goes.

    (Strictly: when the parent's *thread* that started us ends; both the serving
    process and the delivery process start their children from their main
    thread, which lives as long as they do.) `parent`: the pid expected, to
    catch a parent that went before ``prctl`` took effect.
    """
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if parent is not None and os.getppid() != parent:
        os._exit(0)


def ignore_stop_signals() -> None:
    """Leave SIGTERM, SIGINT and SIGHUP to the serving process.

    ``systemctl stop`` (without ``KillMode=mixed``) and Ctrl-C signal every
    process of the service at once; the delivery process and its build
    processes must finish their deliveries and stop when ``mailcall serve``
    tells them to, not die mid-delivery.
    """
    for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        with contextlib.suppress(OSError, ValueError):
            signal.signal(number, signal.SIG_IGN)


class _ParentLink:
    """The child's side: the worker's planner, origin and target, asked of the parent."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.pending: dict[int, asyncio.Future[tuple[DepositPlan, Origin, Target]]] = {}
        self.ids = itertools.count(1)
        self._origin: Origin | None = None
        self._target: Target | None = None

    async def plan(self, deposit: Deposit) -> DepositPlan:
        number = next(self.ids)
        future = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        try:
            self.conn.send(("plan?", number, deposit))
            async with asyncio.timeout(PLAN_TIMEOUT):
                plan, self._origin, self._target = await future
        except PlanUnavailable:
            raise
        except (OSError, TimeoutError) as exc:
            raise PlanUnavailable(f"the serving process did not answer ({exc!r})") from None
        finally:
            self.pending.pop(number, None)
        return plan

    def origin(self) -> Origin:
        assert self._origin is not None, "origin() is only called after plan()"
        return self._origin

    def target(self) -> Target:
        assert self._target is not None, "target() is only called after plan()"
        return self._target

    def answer(self, number: int, verdict: str, payload: Any) -> None:
        future = self.pending.get(number)
        if future is None or future.done():
            return
        if verdict == "ok":
            future.set_result(payload)
        elif verdict == "refused":  # the policy has no plan for it: parked, as in-process
            future.set_exception(ValueError(payload))
        else:
            future.set_exception(PlanUnavailable(payload))

    def delivered(self, deposit: Deposit, plan: DepositPlan, message_id: str) -> None:
        with contextlib.suppress(OSError):
            self.conn.send(("delivered", deposit, plan, message_id))


async def _child(root: str, settings: WorkerSettings, encoders: Mapping[str, Any],
                 conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    link = _ParentLink(conn)
    worker = SpoolWorker(Spool(root), planner=link.plan, origin=link.origin,
                         target=link.target, encoders=encoders, settings=settings,
                         delivered=link.delivered, recover=False)  # the parent recovers
    try:
        await worker.start()
    except Exception as exc:
        conn.send(("failed", str(exc)))
        return
    conn.send(("ready",))
    stopped: asyncio.Future[float] = loop.create_future()
    drains: set[asyncio.Task] = set()

    async def drain(number: int, timeout: float) -> None:
        error = None
        try:
            await worker.drain(timeout)
        except Exception as exc:  # TimeoutError included: the parent reports it
            error = repr(exc)
        with contextlib.suppress(OSError):
            conn.send(("drained", number, error))

    def readable() -> None:
        try:
            while conn.poll():
                message = conn.recv()
                kind = message[0] if isinstance(message, tuple) and message else None
                if kind == "wake":
                    worker.wake()
                    conn.send(("awake",))
                elif kind == "plan":
                    link.answer(*message[1:])
                elif kind == "drain":
                    task = loop.create_task(drain(*message[1:]))
                    drains.add(task)
                    task.add_done_callback(drains.discard)
                elif kind == "stop" and not stopped.done():
                    stopped.set_result(float(message[1]))
        except (EOFError, OSError):  # the parent is gone: stop at once
            loop.remove_reader(conn.fileno())
            if not stopped.done():
                stopped.set_result(0.0)

    loop.add_reader(conn.fileno(), readable)
    grace = await stopped
    await worker.stop(grace)
    with contextlib.suppress(OSError):
        conn.send(("stopped",))


def _child_main(root: str, settings: WorkerSettings, encoders: Mapping[str, Any],
                conn: Connection, parent: int, niceness: int, log_level: int,
                log_format: str | None) -> None:
    die_with_parent(parent)
    ignore_stop_signals()
    with contextlib.suppress(OSError):
        os.nice(niceness)
    logging.basicConfig(level=log_level, format=log_format or logging.BASIC_FORMAT)
    asyncio.run(_child(root, settings, encoders, conn))


# ------------------------------------------------------------------ the parent


class DeliveryProcess:
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
        delivered: Callable[[Deposit, DepositPlan, str], None] | None = None,
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
        """Told of each delivery (deposit, plan, Message-ID): the mobile notification."""
        self.depositor = depositor
        """The one accepting into this spool, if any: crash recovery runs on its thread."""
        self.niceness = niceness
        self.process: multiprocessing.process.BaseProcess | None = None
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
        self._send(("stop", grace))
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
        if self._send(("wake",)):
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
            if not self._send(("drain", number, timeout)):
                raise RuntimeError("the delivery process is not running")
            error = await asyncio.wait_for(future, timeout + 5.0)
        finally:
            self._drains.pop(number, None)
        if error is not None:
            raise TimeoutError(f"the delivery process did not drain: {error}")

    # -- the child -------------------------------------------------------------
    async def _recover(self) -> None:
        """Crash leftovers, cleaned while no child runs and never during an accept."""
        if self.depositor is not None:
            await self.depositor.exclusive(self.spool.recover)
        else:
            await asyncio.to_thread(self.spool.recover)

    async def _spawn(self) -> None:
        loop = self._loop
        assert loop is not None
        try:
            await asyncio.to_thread(self.spool.ensure)
            await self._recover()
        except OSError as exc:
            raise _NotStarted(self.spool.unusable(exc)) from exc
        root = logging.getLogger()
        formats = [h.formatter._fmt for h in root.handlers if h.formatter is not None]
        here, there = multiprocessing.get_context("spawn").Pipe()
        process = multiprocessing.get_context("spawn").Process(
            target=_child_main, name="mailcall-delivery",
            args=(str(self.spool.root), self.settings, self.encoders, there, os.getpid(),
                  self.niceness, root.getEffectiveLevel(), formats[0] if formats else None),
            daemon=False,  # it has children of its own: the build processes
        )
        try:
            process.start()
        except Exception as exc:  # e.g. ENOMEM right after the OOM killer took the last one
            here.close()
            there.close()
            raise _NotStarted(f"cannot start the delivery process: {exc}") from exc
        there.close()
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

    def _send(self, message: tuple) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            conn.send(message)
        except (OSError, ValueError):
            return False
        return True

    def _readable(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            while conn.poll():
                message = conn.recv()
                try:
                    self._handle(message)
                except Exception:
                    log.exception("the delivery process sent %r; handling it failed", message[:2])
        except (EOFError, OSError):
            self._loop.remove_reader(conn.fileno())  # type: ignore[union-attr]

    def _handle(self, message: tuple) -> None:
        kind = message[0]
        if kind == "plan?":
            _, number, deposit = message
            try:
                plan = self.planner(deposit)
            except Exception as exc:  # the policy has no plan for it: parked
                self._send(("plan", number, "refused", str(exc)))
                return
            try:
                answer = (plan, self.origin(), self.target())
                if not self._send(("plan", number, "ok", answer)):
                    raise OSError("cannot send the plan to the delivery process")
            except Exception as exc:  # retried later, never parked for it
                log.exception("cannot give the delivery process the plan for %s",
                              getattr(deposit, "mailbox", "?"))
                self._send(("plan", number, "unavailable", repr(exc)))
        elif kind == "delivered":
            if self.delivered is not None:
                try:
                    self.delivered(*message[1:])
                except Exception:
                    log.exception("deposit for %s delivered, but notifying the mobile failed",
                                  message[1].mailbox)
        elif kind == "awake":
            self._wake_sent = False
            if self._wake_watch is not None:
                self._wake_watch.cancel()
                self._wake_watch = None
            if self._wake_again:
                self._wake_again = False
                self.wake()
        elif kind == "drained":
            future = self._drains.get(message[1])
            if future is not None and not future.done():
                future.set_result(message[2])
        elif kind == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(None)
        elif kind == "failed":
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(RuntimeError(message[1]))

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
                self._readable()  # what it said last ("failed", "drained"...)
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
        if time.monotonic() - self._started_at > 60.0:
            self._restarts = 0
        delay = RESTART_DELAYS[min(self._restarts, len(RESTART_DELAYS) - 1)]
        self._restarts += 1
        log.error("the delivery process (pid %s) %s; deposits wait in the spool %s; "
                  "starting it again in %.0f s", process.pid, _how_it_ended(process.exitcode),
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


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "ended (exit status not known)"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? see dmesg)" if exitcode == -signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {exitcode}"
