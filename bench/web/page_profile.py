"""Where one page view's time goes, at 100,000 users: each stage of GET / timed apart.

The same service as bench/web/page_load.py (the real ``web`` and ``user-store``
services, the store in SQLite, a third of the users with an absence of their own),
pinned to one core. Each stage is what the handler does, called the way it calls it,
in the service's own loop:

- session: the session table's lookup of the cookie;
- overlay: the router's view of the store brought up to date (``router_view``);
- store read: the user's refinements, read in the store's thread, the hop included
  (``refinements_of``);
- explain: effective settings with their sources, the profile in words, the
  settings form's controls (each option asked of the ceiling check);
- plan: the routing core's plan and its sentence;
- render: Jinja2 rendering home.html;
- aiohttp: the rest of a real request (parsing, the middleware, headers, the socket),
  measured as a sequential client in a child process on the other core sees it,
  minus the stages above.

Then cProfile's top functions of the stages (the loop's thread), by own time.

    python bench/web/page_profile.py [--users 100000] [--views 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from policy_scale import generate

STAGES = ("session", "overlay", "store read", "explain", "plan", "render")


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


async def sequential(url: str, sids: list[str], n: int) -> list[float]:
    """Full requests, one at a time, from a child process on the other core."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLIENT, url, ",".join(sids), str(n),
        stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return [float(x) for x in out.split()]


CLIENT = """
import asyncio, os, random, sys, time
import aiohttp
if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
    os.sched_setaffinity(0, {1})
url, sids, n = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3])
async def main():
    async with aiohttp.ClientSession() as http:
        out = []
        for i in range(n + 20):
            sid = random.choice(sids)
            t = time.perf_counter()
            async with http.get(url + "/", headers={"Cookie": "mailcall=" + sid}) as r:
                await r.read()
                assert r.status == 200
            if i >= 20:
                out.append(time.perf_counter() - t)
        print(" ".join(map(str, out)))
asyncio.run(main())
"""


async def run(args: argparse.Namespace) -> None:
    from mailcall.core.host.plugin_manager import make_plugin_manager
    from mailcall.core.host.runtime import Runtime, freeze_snapshot
    from mailcall.core.policy.load import load_policy
    from mailcall.plugins.userstore import UserStoreService
    from mailcall.userstore.effective import effective_settings
    from mailcall.web import wording
    from mailcall.web.config import ClientSieve, WebSettings
    from mailcall.web.context import _env, fmt_of
    from mailcall.web.i18n import Words
    from mailcall.web.plan import current_plan, plan_sentence
    from mailcall.web.routes_home import refinements_of, router_view
    from mailcall.web.service import WebService
    from mailcall.web.settings_form import controls

    tmp = Path(tempfile.mkdtemp(prefix="mailcall-bench-web-profile-"))
    policy_path = tmp / "policy.toml"
    policy_path.write_text(generate(args.users, max(1, args.users // 20)))
    pm = make_plugin_manager()
    t = time.perf_counter()
    policy = load_policy(policy_path, pm=pm)
    print(f"policy: {len(policy.users)} users compiled in {time.perf_counter() - t:.1f} s",
          file=sys.stderr)
    runtime = Runtime(policy, pm, policy_path=policy_path)
    freeze_snapshot()
    runtime.clock = lambda: datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    store = tmp / "users" / "store.sqlite"
    users = UserStoreService(runtime, store)
    # The bench measures pages, not a ManageSieve server it does not start.
    settings = WebSettings(port=0, secure_cookies=False, managesieve=ClientSieve(enabled=False))
    web = WebService(runtime, settings, store=str(store))
    await users.start()
    await web.start()
    ctx = web.ctx
    assert ctx is not None and ctx.store is not None
    ids = random.Random(2).sample(sorted(policy.users), 250)

    def seed() -> None:
        for uid in ids[::3]:
            ctx.store.set_absence(policy, uid, until="2026-12-20", actor=uid, origin="web")

    await ctx.in_store(seed)
    sids = [ctx.sessions.new(uid).id for uid in ids]
    template = _env.get_template("home.html")
    words = Words("fr")
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    profile = cProfile.Profile()

    async def view(sid: str, record: bool) -> None:
        clock = time.perf_counter
        marks = [clock()]
        session = ctx.sessions.get(sid)
        user = policy.users[session.user]
        marks.append(clock())
        view_policy = router_view(ctx, policy)
        marks.append(clock())
        refinements = await refinements_of(ctx, user)
        marks.append(clock())
        eff = effective_settings(policy, user.id, refinements)
        fmt = fmt_of(policy)
        features = wording.features(policy, eff, words)
        shown, pin = controls(policy, eff, refinements, user.id, words, fmt)
        marks.append(clock())
        now = runtime.now()
        absent = eff.absence_at(now)
        plan = current_plan(view_policy or policy, user.id, now, ctx.rules)
        sentence = plan_sentence(policy, plan, user.id, words, fmt,
                                 absent.until if absent else None,
                                 closed=not (view_policy or policy).is_open(eff.user.schedule,
                                                                           now))
        marks.append(clock())
        template.render(t=words, lang="fr", session=session, admin=False, flash=[],
                        csrf=session.csrf, readonly=False, errors={}, values={},
                        absence_errors=False, setting_errors=False, user=user,
                        profile=user.profile, features=features, controls=shown, pin=pin,
                        sentence=sentence, absences=[], backup_allowed=True, backups=None)
        marks.append(clock())
        if record:
            for name, a, b in zip(STAGES, marks[:-1], marks[1:], strict=True):
                times[name].append(b - a)

    for sid in sids[:50]:
        await view(sid, False)
    rnd = random.Random(3)
    for _ in range(args.views):  # timed without the profiler (it slows Python code)
        await view(rnd.choice(sids), True)
    for _ in range(args.views // 2):
        profile.enable()
        await view(rnd.choice(sids), False)
        profile.disable()
    full = await sequential(f"http://127.0.0.1:{web.port}", sids, args.views)
    await web.stop(2)
    await users.stop(2)

    ms = 1000
    total = sum(statistics.mean(v) for v in times.values())
    print(f"{len(policy.users)} users, {args.views} page views (mean / p99, ms)")
    for name in STAGES:
        v = times[name]
        print(f"  {name:<11} {statistics.mean(v) * ms:6.3f} / {pct(v, .99) * ms:6.3f}")
    req = statistics.mean(full)
    print(f"  {'aiohttp':<11} {max(0.0, req - total) * ms:6.3f}   (the rest of a request)")
    print(f"  full GET /  {req * ms:6.3f} / {pct(full, .99) * ms:6.3f}   "
          f"(p50 {pct(full, .5) * ms:.3f}; sequential client on the other core)")
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(args.top)
    print(out.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--views", type=int, default=2000)
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
        os.sched_setaffinity(0, {0})  # the server on one core
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
