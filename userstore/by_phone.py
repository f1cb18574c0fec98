"""The user store as a phone call reaches it (the menu's dialogs, the greeting script):
one short job per read or write.

The PIN and absence dialogs write the same store as the web page and the CLI
(docs/user-settings.md), through :class:`~mailcall.userstore.service.UserStore`,
so a change by phone is refused for the same reasons and audited with origin
``phone``. Each job opens the SQLite file in a worker thread, acts and closes
it (a connection belongs to one thread, and a store repaired by IT is used by
the next call without a restart); it waits at most ``LOCK_WAIT_S`` for a
writer holding the lock, so a caller never hears more than about a second of
silence before the apology.

The file is the one the router reads: the running user-store service's
(:func:`~mailcall.userstore.overlay.overlay_of`), else the path a running
mailcall uses (:func:`mailcall.userstore.paths.runtime_store_path`). After a
write the router's index is refreshed at once, so the next decision (the next
call routed, the next PIN typed) obeys it; the user-store service then tells
the Sieve scripts and the greetings within its interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mailcall.userstore.overlay import overlay_of
from mailcall.userstore.paths import runtime_store_path
from mailcall.userstore.service import UserStore

T = TypeVar("T")

LOCK_WAIT_S = 1.0
"""How long a job waits for another writer (the web page, the CLI) to release the store."""
ORIGIN = "phone"


def store_location(runtime: Any) -> Path:
    """Where the router reads the user store (so the phone writes what calls obey)."""
    overlay = overlay_of(runtime)
    if overlay is not None:
        return Path(overlay.location)
    return runtime_store_path(runtime)


def _job(path: Path, clock: Callable[[], Any], fn: Callable[[UserStore], T]) -> T:
    from mailcall.userstore.sqlite_store import SqliteStore

    backend = SqliteStore(path, timeout=LOCK_WAIT_S)
    try:
        return fn(UserStore(backend, clock=clock))
    finally:
        backend.close()


async def in_store(runtime: Any, fn: Callable[[UserStore], T]) -> T:
    """Run `fn` with the store in a worker thread; StoreError when it cannot be used.

    A hang-up while the job runs does not stop it: a write is one transaction, saved
    whole (everything it needs was typed before it started) or not at all.
    """
    path = store_location(runtime)
    return await asyncio.get_running_loop().run_in_executor(
        None, _job, path, runtime.clock, fn)


async def read(runtime: Any, fn: Callable[[UserStore], T], empty: T) -> T:
    """Like :func:`in_store` for a read, but `empty` when there is no store yet (reading
    never creates one: the first change does)."""
    path = store_location(runtime)
    exists = await asyncio.get_running_loop().run_in_executor(None, path.exists)
    if not exists:
        return empty
    return await in_store(runtime, fn)


def obeyed_now(runtime: Any) -> None:
    """Refresh the router's index after a write: the next decision sees the change."""
    overlay = overlay_of(runtime)
    if overlay is not None:
        overlay.refresh(force=True)  # a store unreadable now is logged by the overlay itself


__all__ = ["LOCK_WAIT_S", "ORIGIN", "in_store", "obeyed_now", "read", "store_location"]
