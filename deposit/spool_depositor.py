"""The spool as the ``Depositor`` of the FastAGI handlers: accepts off the event loop.

The spool's file operations block; the handlers run on the loop that also routes
calls. Accepts run on one thread of their own, one at a time, and wake whoever
subscribed (the delivery worker) once the deposit is durable.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from mailcall.core.decisions.deposits import Deposit

from .spool import Spool

T = TypeVar("T")


class SpoolDepositor:
    """The ``Depositor`` the FastAGI handlers call through ``runtime.deposit``."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._listeners: list[Callable[[str], None]] = []
        self._thread: ThreadPoolExecutor | None = None

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """`listener(spool_id)` is called after each accept (the worker's wake-up)."""
        self._listeners.append(listener)

    async def exclusive(self, func: Callable[[], T]) -> T:
        """Run `func` on the accept thread: never at the same time as an accept
        (``Spool.recover`` empties ``tmp/``, where accepts write)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-accept")
        return await asyncio.get_running_loop().run_in_executor(self._thread, func)

    async def accept(self, message: Deposit) -> str:
        # One thread of our own, not the loop's default pool: 20 simultaneous accepts in
        # 6 default-pool threads made the FastAGI loop queue for the GIL behind them (their
        # Python code between fsyncs), which showed as the burst's slowest routing sessions.
        # Serialised, the 20th caller waits for 19 accepts (a few ms each), fsyncs included.
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-accept")
        loop = asyncio.get_running_loop()
        sid = await loop.run_in_executor(self._thread, self.spool.accept, message)
        for listener in self._listeners:
            listener(sid)
        return sid
