"""Running a handler coroutine from the protocol itself, without a Task, until it needs one.

Why: a FastAGI session is a handful of command/reply round trips. Run as an
``asyncio.Task``, each round trip costs a Future, its done-callback, a
``call_soon`` and a Task step on top of the read callback (``buffer_updated``)
that brought the reply, and the session itself costs a Task (the figures are
in ``docs/asterisk.md``, section 10). So the server steps the handler coroutine
itself: the first step runs straight from the read callback (the environment
block), each reply is handed back with ``coro.send(reply)`` from one
``call_soon`` callback queued by the read callback (:meth:`Runner.resume` says
why not from the read callback itself), the handler writes its next command
and parks again.

The handler stays an ordinary ``async def``. Awaiting an AGI reply while the
server drives it parks on :data:`PARKED`; awaiting *anything else* (a Future
from ``run_in_executor``, ``asyncio.sleep``, a lock, a deposit...) yields that
object to the driver, which hands the rest of the session to a real Task
(:class:`_Resume`): from then on asyncio drives it exactly as if it had been a
Task from the start, and replies come back through Futures.

What a Task gives and the inline steps do not: ``asyncio.current_task()`` is
None, so ``asyncio.timeout()`` and ``TaskGroup`` refuse to run before the
first foreign await. That is why stepping is opt-in (:func:`inline`): the
built-in handlers are marked, a third-party handler runs in a Task unless its
author marks it (an inline handler can still get a Task at any point with
``await asyncio.sleep(0)``). Each session gets its own ``contextvars``
context, as a Task would. Cancellation (graceful stop) throws
``CancelledError`` where the handler waits, in either mode.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Callable, Coroutine, Generator
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_INLINE: dict[int, weakref.ref[Any]] = {}
"""The handlers marked with :func:`inline`, by id (a weak reference each): kept here rather
than as an attribute set on them and probed on each call, so that a handler object says
nothing by accident (one answering every attribute is not taken as marked)."""


class _Parked:
    __slots__ = ()

    def __repr__(self) -> str:
        return "PARKED"


PARKED = _Parked()
"""Yielded to the driver by a handler that waits for an AGI reply."""


def inline(handler: F) -> F:
    """Mark `handler` as safe to step without a Task (see the module docstring).

    Such a handler must not call ``asyncio.current_task()``, ``asyncio.timeout()``
    or ``asyncio.TaskGroup`` before its first await on something that is not an
    AGI command (``await asyncio.sleep(0)`` is enough to get a Task).
    """
    key = id(handler)

    def forget(ref: weakref.ref[Any], key: int = key) -> None:
        if _INLINE.get(key) is ref:  # runs when `handler` dies, before its id is reused
            del _INLINE[key]

    _INLINE[key] = weakref.ref(handler, forget)
    return handler


def is_inline(handler: Any) -> bool:
    ref = _INLINE.get(id(handler))
    return ref is not None and ref() is handler


class _Resume:
    """Carries on a coroutine that already yielded `first` to someone other than a Task."""

    __slots__ = ("coro", "first")

    def __init__(self, coro: Coroutine[Any, Any, Any], first: Any) -> None:
        self.coro = coro
        self.first = first

    def __await__(self) -> Generator[Any, Any, Any]:
        coro = self.coro
        value = self.first
        self.first = None
        while True:
            try:
                sent = yield value
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:
                try:
                    value = coro.throw(exc)
                except StopIteration as stop:
                    return stop.value
            else:
                try:
                    value = coro.send(sent)
                except StopIteration as stop:
                    return stop.value


async def _rest(resume: _Resume) -> Any:
    return await resume


class Runner:
    """Drives one session's coroutine: inline first (if allowed), then as a Task."""

    __slots__ = ("_cancelling", "_done", "_loop", "coro", "ctx", "parked", "stepping", "task")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        coro: Coroutine[Any, Any, Any],
        done: Callable[[Runner], None],
    ) -> None:
        self._loop = loop
        self._done = done
        self.coro: Coroutine[Any, Any, Any] | None = coro
        self.ctx = contextvars.copy_context()
        self.task: asyncio.Task | None = None
        self.parked = False
        """True while the inline coroutine waits for an AGI reply."""
        self.stepping = False
        """True while the protocol is inside the coroutine (awaits may park)."""
        self._cancelling = False

    def start(self, stepped: bool) -> None:
        if stepped:
            self.step(None, None)
        else:
            coro = self.coro
            self.coro = None
            self._adopt(self._loop.create_task(coro, context=self.ctx))  # type: ignore[arg-type]

    def resume(self, value: Any, exc: BaseException | None) -> None:
        """Resume the parked coroutine at the end of this loop iteration.

        Not from inside the read callback itself: on the stdlib loop, answering
        every reply the moment it is read interleaves one write per read and
        keeps both ends waking each other up; answering them together after
        the iteration's reads, as a Task wake-up does, costs less.
        """
        self.parked = False
        self._loop.call_soon(self.step, value, exc)

    def step(self, value: Any, exc: BaseException | None) -> None:
        """Resume the parked coroutine with a reply (or throw `exc` into it)."""
        coro = self.coro
        if coro is None:
            return
        if self._cancelling and exc is None:
            self._cancelling = False
            exc = asyncio.CancelledError()
        self.parked = False
        self.stepping = True
        try:
            if exc is None:
                yielded = self.ctx.run(coro.send, value)
            else:
                yielded = self.ctx.run(coro.throw, exc)
        except BaseException as end:
            self.stepping = False
            self.coro = None
            self._done(self)
            if isinstance(end, (StopIteration, asyncio.CancelledError)):
                return  # the session coroutine logs its own outcome
            if isinstance(end, Exception):  # a bug outside the handler: report as a Task would
                self._loop.call_exception_handler({
                    "message": "FastAGI session coroutine failed", "exception": end})
                return
            raise  # KeyboardInterrupt, SystemExit: as a Task would
        self.stepping = False
        if yielded is PARKED:
            self.parked = True
            return
        # Something asyncio must wait for: a Task takes over from here.
        self.coro = None
        self._adopt(self._loop.create_task(_rest(_Resume(coro, yielded)), context=self.ctx))

    def _adopt(self, task: asyncio.Task) -> None:
        self.task = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self.task = None
        self._done(self)

    def cancel(self) -> None:
        """What ``Task.cancel()`` does, for either mode."""
        if self.task is not None:
            self.task.cancel()
        elif self.coro is not None:
            if self.parked:
                self.step(None, asyncio.CancelledError())
            else:  # a reply is on its way in: throw instead of delivering it
                self._cancelling = True
