"""The employees' page at 100,000 users: page render latency, and many logged-in users at once.

The server is the real ``web`` service (aiohttp, Jinja2, the user store in SQLite,
the user-store service's overlay applied to the call plan) in this process, pinned
to one core; the clients run in a child process pinned to the other, so that their
own work is not counted against the server. Sessions are made directly in the
service's session table: the IMAP login is not what is measured (it costs one IMAP
LOGIN at Dovecot, once per session).

- render: one logged-in user's page (GET /), one request at a time, p50 / p95 / p99;
- concurrent: `--concurrency` users, each with their own session, fetching their page
  in a loop for `--seconds`, waiting about `--think` seconds between two pages as a
  person does (``--think 0``: back to back, the saturation throughput); latency
  p50 / p95 / p99 and requests per second.

    python bench/web/page_load.py [--users 100000] [--concurrency 200] [--seconds 20]
                                  [--think 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_scale import generate


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def client(url: str, sids: list[str], renders: int, concurrency: int, seconds: float,
                 think: float) -> dict:
    import aiohttp

    out: dict = {}
    timeout = aiohttp.ClientTimeout(total=30)
    conn = aiohttp.TCPConnector(limit=concurrency + 1)
    async with aiohttp.ClientSession(timeout=timeout, connector=conn) as http:
        async def get(sid: str) -> float:
            t = time.perf_counter()
            async with http.get(url + "/", headers={"Cookie": f"mailcall={sid}"},
                                allow_redirects=False) as r:
                body = await r.read()
                assert r.status == 200 and b'id="plan"' in body, (r.status, body[:200])
            return time.perf_counter() - t

        for sid in sids[:20]:  # warm-up: templates compiled, connections open
            await get(sid)
        lat = [await get(random.choice(sids)) for _ in range(renders)]
        out["render"] = lat
        mine = sids[:concurrency]
        lats: list[float] = []
        end = time.perf_counter() + seconds

        async def user(sid: str) -> None:
            rnd = random.Random(sid)
            await asyncio.sleep(rnd.uniform(0, think))  # users do not all click at once
            while time.perf_counter() < end:
                lats.append(await get(sid))
                if think:
                    await asyncio.sleep(rnd.uniform(0.5 * think, 1.5 * think))

        t0 = time.perf_counter()
        await asyncio.gather(*(user(s) for s in mine))
        out["concurrent"] = lats
        out["elapsed"] = time.perf_counter() - t0
    return out


def child(args: argparse.Namespace) -> None:
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})
    sids = json.loads(Path(args.sids).read_text())
    result = asyncio.run(client(args.url, sids, args.renders, args.concurrency, args.seconds,
                                args.think))
    print(json.dumps(result))


async def serve(args: argparse.Namespace) -> None:
    from mailcall.core.host.plugin_manager import make_plugin_manager
    from mailcall.core.host.runtime import Runtime, freeze_snapshot
    from mailcall.core.policy.load import load_policy
    from mailcall.plugins.userstore import UserStoreService
    from mailcall.web.config import WebSettings
    from mailcall.web.service import WebService

    tmp = Path(tempfile.mkdtemp(prefix="mailcall-bench-web-"))
    policy_path = tmp / "policy.toml"
    policy_path.write_text(generate(args.users, max(1, args.users // 20)))
    pm = make_plugin_manager()
    t = time.perf_counter()
    policy = load_policy(policy_path, pm=pm)
    print(f"policy: {len(policy.users)} users compiled in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    runtime = Runtime(policy, pm, policy_path=policy_path)
    freeze_snapshot()  # as `mailcall serve` does: the compiled policy out of the GC's walks
    runtime.clock = lambda: datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    store = tmp / "users" / "store.sqlite"
    users = UserStoreService(runtime, store)
    web = WebService(runtime, WebSettings(port=0, secure_cookies=False), store=str(store))
    await users.start()
    await web.start()
    assert web.ctx is not None and web.ctx.store is not None
    ids = random.Random(2).sample(sorted(policy.users), args.concurrency + 50)
    # A third of the users have an absence of their own (the plan then differs).
    def seed() -> None:
        for uid in ids[::3]:
            web.ctx.store.set_absence(policy, uid, until="2026-12-20", actor=uid, origin="web")

    await web.ctx.in_store(seed)  # the store's connection belongs to its thread
    sids = [web.ctx.sessions.new(uid).id for uid in ids]
    sid_file = tmp / "sids.json"
    sid_file.write_text(json.dumps(sids))
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", f"http://127.0.0.1:{web.port}", "--sids",
        str(sid_file), "--renders", str(args.renders), "--concurrency", str(args.concurrency),
        "--seconds", str(args.seconds), "--think", str(args.think), stdout=subprocess.PIPE)
    stdout, _ = await proc.communicate()
    await web.stop(2)
    await users.stop(2)
    result = json.loads(stdout)
    ms = 1000
    render, conc = result["render"], result["concurrent"]
    print(json.dumps({
        "users": len(policy.users),
        "render_ms": {"p50": round(pct(render, .5) * ms, 1), "p95": round(pct(render, .95) * ms, 1),
                      "p99": round(pct(render, .99) * ms, 1), "n": len(render)},
        "concurrent": {"users": args.concurrency, "think_s": args.think,
                       "seconds": round(result["elapsed"], 1),
                       "requests": len(conc),
                       "per_second": round(len(conc) / result["elapsed"]),
                       "p50_ms": round(pct(conc, .5) * ms, 1),
                       "p95_ms": round(pct(conc, .95) * ms, 1),
                       "p99_ms": round(pct(conc, .99) * ms, 1)},
    }, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--renders", type=int, default=500)
    ap.add_argument("--think", type=float, default=1.0,
                    help="mean seconds a user waits between two pages (0: back to back, "
                         "which measures the saturation throughput instead)")
    ap.add_argument("--client")
    ap.add_argument("--sids")
    args = ap.parse_args()
    if args.client:
        args.url = args.client
        child(args)
        return
    if hasattr(os, "sched_setaffinity") and os.cpu_count() and os.cpu_count() > 1:
        os.sched_setaffinity(0, {0})  # the server on one core
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
