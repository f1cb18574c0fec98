"""Built-in plugin: the user store, obeyed by a running mailcall, and its commands for IT.

``mailcall user show|set|clear|history`` and ``mailcall absence set|clear``
(docs/user-settings.md). Under ``mailcall serve`` the ``user-store`` service
opens the store, loads its index once and attaches it to the runtime
(:func:`mailcall.userstore.overlay.attach`): every call, voicemail, deposit and
mail decision then takes the policy refined by the users' own settings, and a
change made by another process (the CLI, the web page, the phone menu) is
obeyed by the next decision. Every `interval` seconds it also calls the
``mailcall_user_settings_changed`` hook for each user who changed, so that the
greetings and Sieve plugins regenerate their absence greeting and auto-reply.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from mailcall.core.contracts import Service
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import offers
from mailcall.userstore import commands
from mailcall.userstore.overlay import StoreOverlay, attach, detach
from mailcall.userstore.paths import runtime_store_path

log = logging.getLogger("mailcall.userstore")


class UserStoreService:
    """Keeps the runtime's overlay current and announces which users changed."""

    name = "user-store"
    interval = 0.1

    def __init__(self, runtime: Runtime, path: Path | None = None) -> None:
        self.runtime = runtime
        self.path = path or runtime_store_path(runtime)
        self.overlay: StoreOverlay | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        try:
            media = offers(self.runtime.pm).media
        except TypeError:  # a broken media plugin: the policy load already said which
            media = None
        overlay = StoreOverlay.for_file(self.path, media=media)
        # Loaded before any call is decided with it (once; seconds at 100,000 users).
        if overlay.open():
            log.info("user store %s: %d user(s) with their own settings", self.path,
                     len(overlay.index or ()))
        elif overlay.problem is None:
            log.info("no user store yet at %s: the policy file alone applies until the first "
                     "change (mailcall user/absence, the web page) creates it", self.path)
        attach(self.runtime, overlay)
        self.overlay = overlay
        self.task = asyncio.get_running_loop().create_task(self._loop())

    async def _loop(self) -> None:
        assert self.overlay is not None
        while True:
            self.tick()
            await asyncio.sleep(self.interval)

    def tick(self) -> dict[str, frozenset[str]]:
        """One refresh, then ``mailcall_user_settings_changed`` for each user who changed."""
        assert self.overlay is not None
        self.overlay.refresh(force=True)
        return self.overlay.announce_changes(self.runtime)

    async def stop(self, grace: float) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        overlay = detach(self.runtime)
        if overlay is not None:
            overlay.close()


@hookimpl
def mailcall_services(runtime: Any) -> list[Service]:
    return [UserStoreService(runtime)]


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    commands.register(subparsers)
