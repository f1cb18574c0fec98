"""One worker thread per speech engine, serving the most urgent sentence first.

The engine is not thread-safe and a sentence takes milliseconds, so a single
thread serves every call of the process. Each request carries a deadline —
when its caller will run out of audio — and the earliest is served first: a
call that just pressed a key (nothing to play) goes ahead of calls that still
have seconds of speech queued, which is what keeps the first audio quick with
50 calls sharing one core.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class _Job:
    deadline: float
    seq: int
    work: Callable[[Ticket], Any] = field(compare=False)
    deliver: Callable[[Any, BaseException | None], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class Ticket:
    """A submitted request: cancel it if its result is no longer wanted."""

    def __init__(self, job: _Job) -> None:
        self._job = job

    def cancel(self) -> None:
        self._job.cancelled = True

    @property
    def cancelled(self) -> bool:
        return self._job.cancelled


class Scheduler:
    """Runs submitted callables on one daemon thread, earliest deadline first."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._heap: list[_Job] = []
        self._seq = itertools.count()
        self._ready = threading.Condition()
        self._thread: threading.Thread | None = None

    def submit(self, deadline: float, work: Callable[[Ticket], Any],
               deliver: Callable[[Any, BaseException | None], None]) -> Ticket:
        """Run `work(ticket)` on the worker; then `deliver(result, error)` is called there.

        `work` gets its own ticket so it can tell, once done, whether its result
        is still wanted (and remove what it wrote if not).
        """
        job = _Job(deadline, next(self._seq), work, deliver)
        with self._ready:
            heapq.heappush(self._heap, job)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._ready.notify()
        return Ticket(job)

    def run_async(self, deadline: float,
                  work: Callable[[Ticket], Any]) -> tuple[asyncio.Future, Ticket]:
        """Submit `work` and get an asyncio future for its result on the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()

        def settle(result: Any, error: BaseException | None) -> None:
            if future.done():
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def deliver(result: Any, error: BaseException | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nobody waits
                loop.call_soon_threadsafe(settle, result, error)

        return future, self.submit(deadline, work, deliver)

    def pending(self) -> int:
        with self._ready:
            return sum(1 for job in self._heap if not job.cancelled)

    def _run(self) -> None:
        while True:
            with self._ready:
                while not self._heap:
                    self._ready.wait()
                job = heapq.heappop(self._heap)
            if job.cancelled:
                continue
            try:
                result = job.work(Ticket(job))
            except Exception as exc:
                job.deliver(None, exc)
            else:
                job.deliver(result, None)


def now() -> float:
    return time.monotonic()
