"""The employees' page served for real: its service and the user-store service in one loop.

The loop runs in a thread of its own, as ``mailcall serve`` would run it, so that
the tests (and chromium) talk HTTP to a real listening socket. The policy is the
example one with hostile display names, the clock is fixed (a Tuesday at 10:00 in
Paris, inside opening hours), passwords are checked by a real private Dovecot.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import load_policy
from mailcall.plugins.userstore import UserStoreService
from mailcall.web.config import ClientSieve, LoginImap, WebSettings
from mailcall.web.service import WebService
from tests.support.policies import example_policy_text

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # 10:00 in Paris, a Tuesday
HOSTILE_NAME = '<script>alert("carole")</script>Carole'
HOSTILE_GROUP = 'Accueil <img src=x onerror="alert(1)">'
CHANGES: Mapping[str, Any] = {
    "users": {"carole": {"name": HOSTILE_NAME}},
    "groups": {"reception": {"name": HOSTILE_GROUP}},
}
USERS = ("alice@stockinox.example", "bernard@stockinox.example", "carole@stockinox.example",
         "david@stockinox.example")


class WebHarness:
    def __init__(self, root: Path, imap_port: int, *, admins: tuple[str, ...] = ("david",),
                 secure_cookies: bool = False, changes: Mapping[str, Any] = CHANGES,
                 clock: Any = None, managesieve: ClientSieve | None = None) -> None:
        self.root = root
        self.policy_path = root / "policy.toml"
        self.policy_path.write_text(example_policy_text(changes), "utf-8")
        self.store_path = root / "state" / "users" / "store.sqlite"
        self.settings = WebSettings(host="127.0.0.1", port=0, secure_cookies=secure_cookies,
                                    admins=admins, imap=LoginImap(port=imap_port, timeout=5.0),
                                    # Off unless a test gives a ManageSieve listener.
                                    managesieve=managesieve or ClientSieve(enabled=False))
        self.clock = clock or (lambda: NOW)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.web: WebService | None = None
        self.users: UserStoreService | None = None
        self.runtime: Runtime | None = None

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> WebHarness:
        self.thread.start()
        pm = make_plugin_manager()
        runtime = Runtime(load_policy(self.policy_path, pm=pm), pm, policy_path=self.policy_path)
        runtime.clock = self.clock
        self.runtime = runtime
        self.users = UserStoreService(runtime, self.store_path)
        self.web = WebService(runtime, self.settings, store=str(self.store_path))

        async def start() -> None:
            await self.users.start()
            await self.web.start()

        self.run(start())
        return self

    @property
    def url(self) -> str:
        assert self.web is not None and self.web.port
        return f"http://127.0.0.1:{self.web.port}"

    def stop(self) -> None:
        async def stop() -> None:
            if self.web is not None:
                await self.web.stop(2.0)
            if self.users is not None:
                await self.users.stop(2.0)

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


def insecure(settings: WebSettings) -> WebSettings:
    return replace(settings, secure_cookies=False)
