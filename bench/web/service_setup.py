"""The service both web benchmarks measure, set up once: page_load.py and page_profile.py.

The real ``web`` and ``user-store`` services in this process, over a generated policy
(bench/policy_scale.py) and a fresh SQLite store, with a third of the chosen users
given an absence of their own (their plan then differs) and a session for each, made
directly in the service's session table: the IMAP login is not what is measured.
mailcall is imported inside :func:`start` so that a client child importing this file
for :func:`pct` or :func:`pin` stays light.
"""

from __future__ import annotations

import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_scale import generate


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def pin(core: int) -> None:
    """Run this process (and the threads it starts from now on) on `core`, if there are two."""
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {core})


@dataclass
class Service:
    tmp: Path
    policy: Any
    runtime: Any
    users: Any
    """The user-store service (``mailcall.plugins.userstore.UserStoreService``)."""
    web: Any
    """The web service (``mailcall.web.service.WebService``), started, on ``web.port``."""
    ids: list[str]
    """The users with a session, in the order of :attr:`sids`."""
    sids: list[str]

    async def stop(self) -> None:
        await self.web.stop(2)
        await self.users.stop(2)


async def start(users: int, sessions: int, prefix: str) -> Service:
    """Both services started over `users` generated users, `sessions` of them logged in."""
    from mailcall.core.host.plugin_manager import make_plugin_manager
    from mailcall.core.host.runtime import Runtime, freeze_snapshot
    from mailcall.core.policy.load import load_policy
    from mailcall.plugins.userstore import UserStoreService
    from mailcall.web.config import ClientSieve, WebSettings
    from mailcall.web.service import WebService

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    policy_path = tmp / "policy.toml"
    policy_path.write_text(generate(users, max(1, users // 20)))
    pm = make_plugin_manager()
    t = time.perf_counter()
    policy = load_policy(policy_path, pm=pm)
    print(f"policy: {len(policy.users)} users compiled in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    runtime = Runtime(policy, pm, policy_path=policy_path)
    freeze_snapshot()  # as `mailcall serve` does: the compiled policy out of the GC's walks
    runtime.clock = lambda: datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    store = tmp / "users" / "store.sqlite"
    user_store = UserStoreService(runtime, store)
    # The bench measures pages, not a ManageSieve server it does not start.
    settings = WebSettings(port=0, secure_cookies=False, managesieve=ClientSieve(enabled=False))
    web = WebService(runtime, settings, store=str(store))
    await user_store.start()
    await web.start()
    ctx = web.ctx
    assert ctx is not None and ctx.store is not None
    ids = random.Random(2).sample(sorted(policy.users), sessions)

    def seed() -> None:
        for uid in ids[::3]:
            ctx.store.set_absence(policy, uid, until="2026-12-20", actor=uid, origin="web")

    await ctx.in_store(seed)  # the store's connection belongs to its thread
    sids = [ctx.sessions.new(uid).id for uid in ids]
    return Service(tmp, policy, runtime, user_store, web, ids, sids)
