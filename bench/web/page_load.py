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
                                  [--think 1.0] [--compare] [--rounds N]

The server's process (its loop and its store thread) is pinned to core 0 before any
thread starts, so every thread it makes inherits that core; the client pins itself to
core 1. ``--compare`` alternates the page's read of the user's refinements in the
store's thread (what the page does) with a read from the user-store service's index
(no thread hop), in one run, so that both see the same machine. Each run also prints
what the server's threads got of their core (the scheduler's counts in
/proc/self/task/*/schedstat): CPU seconds, CPU per page, and seconds spent runnable but
waiting for the core while other processes held it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from service_setup import pct, pin, start


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
        t0 = time.perf_counter()
        lat = [await get(random.choice(sids)) for _ in range(renders)]
        out["render"] = lat
        out["render_s"] = time.perf_counter() - t0
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
    pin(1)
    sids = json.loads(Path(args.sids).read_text())
    result = asyncio.run(client(args.url, sids, args.renders, args.concurrency, args.seconds,
                                args.think))
    print(json.dumps(result))


async def serve(args: argparse.Namespace) -> None:
    service = await start(args.users, args.concurrency + 50, "mailcall-bench-web-")
    sid_file = service.tmp / "sids.json"
    sid_file.write_text(json.dumps(service.sids))
    variants = ["store-thread", "index"] if args.compare else ["store-thread"]
    out: dict = {"users": len(service.policy.users), "load_average": os.getloadavg()}
    for n, variant in enumerate(variants * args.rounds):
        restore = _index_reads() if variant == "index" else None
        before = _sched()
        try:
            result = await _clients(args, service.web.port, sid_file)
        finally:
            if restore:
                restore()
        after = _sched()
        figures = _figures(args, result)
        # What the server's threads got of their core: CPU time, and time spent runnable
        # but waiting for the core (other processes held it): the scheduler's own counts.
        cpu, waited = after[0] - before[0], after[1] - before[1]
        pages = figures["render_ms"]["n"] + figures["concurrent"]["requests"] + 20
        figures["server"] = {"cpu_s": round(cpu, 2), "cpu_ms_per_page": round(cpu / pages * 1000,
                                                                              2),
                             "waited_for_core_s": round(waited, 2),
                             "wall_s": round(result["elapsed"] + result.get("render_s", 0), 1)}
        out[f"run {n + 1} ({variant} read)"] = figures
    out["load_average_after"] = os.getloadavg()
    await service.stop()
    print(json.dumps(out, indent=2))


def _sched() -> tuple[float, float]:
    """Seconds this process's threads ran, and waited runnable on a run queue
    (/proc/self/task/*/schedstat; zeros where it does not exist)."""
    ran = waited = 0.0
    for stat in Path("/proc/self/task").glob("*/schedstat"):
        try:
            fields = stat.read_text().split()
        except OSError:
            continue  # a thread that ended meanwhile
        ran += int(fields[0]) / 1e9
        waited += int(fields[1]) / 1e9
    return ran, waited


def _index_reads():
    """For --compare: page views read the user's refinements from the user-store
    service's index (in memory, brought up to date by the page's forced refresh) instead
    of in the store's thread."""
    from mailcall.userstore.overlay import overlay_of
    from mailcall.web import routes_home

    original = routes_home.refinements_of

    async def from_index(ctx, user):
        overlay = overlay_of(ctx.runtime)
        if overlay is None or overlay.index is None or overlay.problem is not None:
            return await original(ctx, user)
        return overlay.index.get(user.id)

    routes_home.refinements_of = from_index
    return lambda: setattr(routes_home, "refinements_of", original)


async def _clients(args: argparse.Namespace, port: int, sid_file: Path) -> dict:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--client", f"http://127.0.0.1:{port}", "--sids",
        str(sid_file), "--renders", str(args.renders), "--concurrency", str(args.concurrency),
        "--seconds", str(args.seconds), "--think", str(args.think), stdout=subprocess.PIPE)
    stdout, _ = await proc.communicate()
    return json.loads(stdout)


def _figures(args: argparse.Namespace, result: dict) -> dict:
    ms = 1000
    render, conc = result["render"], result["concurrent"]
    return {
        "render_ms": {"p50": round(pct(render, .5) * ms, 1), "p95": round(pct(render, .95) * ms, 1),
                      "p99": round(pct(render, .99) * ms, 1), "n": len(render)},
        "concurrent": {"users": args.concurrency, "think_s": args.think,
                       "seconds": round(result["elapsed"], 1),
                       "requests": len(conc),
                       "per_second": round(len(conc) / result["elapsed"]),
                       "p50_ms": round(pct(conc, .5) * ms, 1),
                       "p95_ms": round(pct(conc, .95) * ms, 1),
                       "p99_ms": round(pct(conc, .99) * ms, 1)},
        "load_average": os.getloadavg()[0],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--renders", type=int, default=500)
    ap.add_argument("--think", type=float, default=1.0,
                    help="mean seconds a user waits between two pages (0: back to back, "
                         "which measures the saturation throughput instead)")
    ap.add_argument("--compare", action="store_true",
                    help="also run with the user's refinements read from the user-store "
                         "service's index instead of the store's thread, alternating, in "
                         "the same run")
    ap.add_argument("--rounds", type=int, default=1,
                    help="how many times each variant runs (alternating)")
    ap.add_argument("--client")
    ap.add_argument("--sids")
    args = ap.parse_args()
    if args.client:
        args.url = args.client
        child(args)
        return
    pin(0)  # the server on one core
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
