"""The ``web`` service of ``mailcall serve``: the page's HTTP server inside serve's loop.

A store that cannot be opened does not stop the page: it shows read-only (the
log says why, once), calls and mail go on following the policy, and each page
view tries the store again.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from aiohttp import web

from mailcall.userstore.errors import StoreError
from mailcall.userstore.paths import runtime_store_path
from mailcall.userstore.service import UserStore
from mailcall.web.app import WebContext, make_app
from mailcall.web.config import WebSettings

log = logging.getLogger("mailcall.web")
IMAP_THREADS = 8
"""IMAP logins checked at once; more wait their turn (the bound on connections to Dovecot)."""


class WebService:
    name = "web"

    def __init__(self, runtime: Any, settings: WebSettings, *, store: str | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        self.store_location = store
        self.ctx: WebContext | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        """The port listened on (the configured one, or the one the system chose for 0)."""

    def _open(self) -> UserStore:
        from mailcall.userstore.sqlite_store import SqliteStore

        # The same file as the user-store service's (``--greetings-dir``, $MAILCALL_USER_STORE).
        path = (Path(self.store_location) if self.store_location
                else runtime_store_path(self.runtime))
        return UserStore(SqliteStore(path), clock=self.runtime.clock)

    async def start(self) -> None:
        ctx = WebContext(self.runtime, self.settings,
                         store_pool=ThreadPoolExecutor(1, thread_name_prefix="web-store"),
                         imap_pool=ThreadPoolExecutor(IMAP_THREADS,
                                                      thread_name_prefix="web-imap"),
                         open_store=self._open)
        try:
            ctx.store = await ctx.in_store(self._open)
        except StoreError as exc:
            ctx.store_problem = str(exc)
            log.error("web: the page is read-only: %s", exc)
        self.ctx = ctx
        runner = web.AppRunner(make_app(ctx), access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            self._close(ctx)
            raise
        self._runner = runner
        addresses = runner.addresses
        self.port = addresses[0][1] if addresses else self.settings.port
        where = f"http://{self.settings.host}:{self.port}/"
        log.info("web: the employees' page listens on %s (%s cookies; docs/web.md)", where,
                 "Secure" if self.settings.secure_cookies else "NOT Secure: loopback test")

    async def stop(self, grace: float) -> None:
        if self._runner is not None:
            try:
                await asyncio.wait_for(self._runner.cleanup(), timeout=max(grace, 0.5))
            except TimeoutError:
                log.warning("web: requests still running after %.1f s were cut", grace)
            self._runner = None
        if self.ctx is not None:
            self._close(self.ctx)
            self.ctx = None

    @staticmethod
    def _close(ctx: WebContext) -> None:
        store = ctx.store
        if store is not None:
            ctx.store_pool.submit(store.backend.close).result(timeout=10)
        ctx.store_pool.shutdown(wait=True)
        ctx.imap_pool.shutdown(wait=False, cancel_futures=True)
