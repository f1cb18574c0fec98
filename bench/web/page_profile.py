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
- plan: the routing core's plan and its sentence, and what the page says of the mail
  client's out-of-office;
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
import pstats
import random
import statistics
import sys
import time

from service_setup import pct, pin, start

STAGES = ("session", "overlay", "store read", "explain", "plan", "render")


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
    from mailcall.userstore.effective import effective_settings
    from mailcall.userstore.overlay import decision_policy
    from mailcall.web import wording
    from mailcall.web.client_vacation import client_notice
    from mailcall.web.context import _env, fmt_of
    from mailcall.web.i18n import Words
    from mailcall.web.plan import current_plan, plan_sentence
    from mailcall.web.routes_home import refinements_of, router_view
    from mailcall.web.settings_form import controls

    service = await start(args.users, 250, "mailcall-bench-web-profile-")
    policy, runtime, ctx, sids = service.policy, service.runtime, service.web.ctx, service.sids
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
        client = client_notice(policy, decision_policy(runtime), user.id, now, session, words)
        marks.append(clock())
        template.render(t=words, lang="fr", session=session, admin=False, flash=[],
                        csrf=session.csrf, readonly=False, errors={}, values={},
                        absence_errors=False, setting_errors=False, user=user,
                        profile=user.profile, features=features, controls=shown, pin=pin,
                        sentence=sentence, absences=[], backup_allowed=True, backups=None,
                        client=client)
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
    full = await sequential(f"http://127.0.0.1:{service.web.port}", sids, args.views)
    await service.stop()

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
    pin(0)  # the server on one core
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
