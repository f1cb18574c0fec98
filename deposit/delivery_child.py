"""The delivery process from the inside: the spool worker, its plans asked of mailcall serve.

:class:`~mailcall.deposit.delivery_process.DeliveryProcess` starts this in a
child process at a lower priority than call routing. The worker here builds
and delivers; what depends on the policy or on plugins (the plan, the sender,
the delivery target, the mobile notification) stays in the serving process and
is asked for over the pipe (:mod:`~mailcall.deposit.pipe_protocol`), so a policy
reload applies to deposits still waiting and plugins run where they always do.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import os
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from mailcall.core.decisions.deposits import Deposit
from mailcall.core.decisions.plans import DepositPlan

from . import pipe_protocol as pipe
from .delivery import Target
from .lifetime import die_with_parent, ignore_stop_signals
from .spool import Spool
from .voice_message import Origin
from .worker import PlanUnavailable, SpoolWorker, WorkerSettings

log = logging.getLogger(__name__)

PLAN_TIMEOUT = 30.0
"""A plan not given within this time: the deposit is deferred (the server is busy or stuck)."""


class ParentLink:
    """The worker's planner, origin and target, asked of the serving process."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.end = pipe.PipeEnd(pipe.Side.DELIVERY)
        self.pending: dict[int, asyncio.Future[pipe.PlanGiven]] = {}
        self.ids = itertools.count(1)
        self._origin: Origin | None = None
        self._target: Target | None = None

    def send(self, message: pipe.Message) -> None:
        """Raises OSError when the parent is gone."""
        self.conn.send_bytes(self.end.encode(message))

    def send_if_possible(self, message: pipe.Message) -> None:
        with contextlib.suppress(OSError):
            self.send(message)

    async def plan(self, deposit: Deposit) -> DepositPlan:
        number = next(self.ids)
        future: asyncio.Future[pipe.PlanGiven] = asyncio.get_running_loop().create_future()
        self.pending[number] = future
        try:
            self.send(pipe.PlanRequest(number, deposit))
            async with asyncio.timeout(PLAN_TIMEOUT):
                given = await future
        except PlanUnavailable:
            raise
        except (OSError, TimeoutError) as exc:
            raise PlanUnavailable(f"the serving process did not answer ({exc!r})") from None
        finally:
            self.pending.pop(number, None)
        self._origin, self._target = given.origin, given.target
        return given.plan

    def origin(self) -> Origin:
        assert self._origin is not None, "origin() is only called after plan()"
        return self._origin

    def target(self) -> Target:
        assert self._target is not None, "target() is only called after plan()"
        return self._target

    def answer(self, message: pipe.PlanGiven | pipe.PlanRefused | pipe.PlanRetryLater) -> None:
        future = self.pending.get(message.number)
        if future is None or future.done():
            return
        if isinstance(message, pipe.PlanGiven):
            future.set_result(message)
        elif isinstance(message, pipe.PlanRefused):  # the policy has no plan: parked, as in-process
            future.set_exception(ValueError(message.reason))
        else:
            future.set_exception(PlanUnavailable(message.reason))

    def delivered(self, deposit: Deposit, plan: DepositPlan, message_id: str) -> bool:
        """Told to serve, which queues the notification and then clears the record's
        promise: False, so the worker here leaves ``notify_pending`` alone."""
        self.send_if_possible(pipe.DepositDelivered(deposit, plan, message_id))
        return False


async def run(root: str, settings: WorkerSettings, encoders: Mapping[str, Any],
              conn: Connection) -> None:
    """Until the parent says stop, or is gone."""
    loop = asyncio.get_running_loop()
    link = ParentLink(conn)
    worker = SpoolWorker(Spool(root), planner=link.plan, origin=link.origin,
                         target=link.target, encoders=encoders, settings=settings,
                         delivered=link.delivered, recover=False)  # the parent recovers
    try:
        await worker.start()
    except Exception as exc:
        link.send(pipe.StartFailed(str(exc)))
        return
    link.send(pipe.Ready())
    stopped: asyncio.Future[float] = loop.create_future()
    drains: set[asyncio.Task] = set()

    async def drain(number: int, timeout: float) -> None:
        error = None
        try:
            await worker.drain(timeout)
        except Exception as exc:  # TimeoutError included: the parent reports it
            error = repr(exc)
        link.send_if_possible(pipe.Drained(number, error))

    def readable() -> None:
        try:
            while conn.poll():
                frame = conn.recv_bytes()
                try:
                    message = link.end.decode(frame)
                except pipe.PipeProtocolError as exc:
                    log.error("mailcall serve sent the delivery process a message it cannot "
                              "read (%s): ignored. If mailcall was upgraded while it was "
                              "serving, restart it (systemctl restart mailcall)", exc)
                    continue
                if isinstance(message, pipe.Wake):
                    worker.wake()
                    link.send(pipe.Awake())
                elif isinstance(message, pipe.PlanGiven | pipe.PlanRefused | pipe.PlanRetryLater):
                    link.answer(message)
                elif isinstance(message, pipe.Drain):
                    task = loop.create_task(drain(message.number, message.timeout))
                    drains.add(task)
                    task.add_done_callback(drains.discard)
                elif isinstance(message, pipe.Stop) and not stopped.done():
                    stopped.set_result(message.grace)
        except (EOFError, OSError):  # the parent is gone: stop at once
            loop.remove_reader(conn.fileno())
            if not stopped.done():
                stopped.set_result(0.0)

    loop.add_reader(conn.fileno(), readable)
    grace = await stopped
    await worker.stop(grace)
    link.send_if_possible(pipe.Stopped())


def main(root: str, settings: WorkerSettings, encoders: Mapping[str, Any],
         conn: Connection, parent: int, niceness: int, log_level: int,
         log_format: str | None) -> None:
    """The process's entry point (multiprocessing ``spawn`` target)."""
    die_with_parent(parent)
    ignore_stop_signals()
    with contextlib.suppress(OSError):
        os.nice(niceness)
    logging.basicConfig(level=log_level, format=log_format or logging.BASIC_FORMAT)
    asyncio.run(run(root, settings, encoders, conn))


def start(root: Path, settings: WorkerSettings, encoders: Mapping[str, Any],
          niceness: int) -> tuple[BaseProcess, Connection]:
    """Start the delivery process for the spool at `root`, `niceness` below this one.

    Returns it and this side's end of the pipe. It logs as this process does (the
    root logger's level and format) and dies with it.
    """
    logger = logging.getLogger()
    formats = [h.formatter._fmt for h in logger.handlers if h.formatter is not None]
    context = multiprocessing.get_context("spawn")  # never fork a process running a loop
    here, there = context.Pipe()
    process = context.Process(
        target=main, name="mailcall-delivery",
        args=(str(root), settings, dict(encoders), there, os.getpid(), niceness,
              logger.getEffectiveLevel(), formats[0] if formats else None),
        daemon=False,  # it has children of its own: the build processes
    )
    try:
        process.start()
    except BaseException:
        here.close()
        raise
    finally:
        there.close()
    return process, here
