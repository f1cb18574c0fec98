"""Change -> obeyed at 100,000 users: from a user's change, committed through the store's API
in another process (as the CLI or the web page does), to the first routing decision of the
serving process that obeys it; beside it, the peer: a full policy reload at the same size.

The serving side is this process: the compiled policy, a real SQLite store seeded with
refinements for every user (bench/userstore/store_scale.py's seed), the overlay of
``mailcall serve`` (:class:`mailcall.userstore.overlay.StoreOverlay`, loaded once) and
``plan_call`` on :func:`~mailcall.userstore.overlay.decision_policy`, exactly what the
FastAGI ``route`` handler calls. It decides a call to the changed user over and over (a
busy line) until the plan obeys the change; the writer process sets an absence with a
backup (the plan must ring the backup first), then clears it (the user's own phone
first again). Both processes read the same wall clock.

The peer is what applying a change cost before the store: ``load_policy`` of the file
(TOML parse and compile) and the snapshot swap (``Runtime.replace_policy``).

    python bench/userstore/bench_obey.py [--users 100000] [--changes 100]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

PARIS = ZoneInfo("Europe/Paris")
AWAY_FROM, AWAY_UNTIL = "2027-02-01", "2027-02-06"
DECIDE_AT = datetime(2027, 2, 3, 10, 0, tzinfo=PARIS)  # a Wednesday, office hours


def writer(policy_path: str, store_path: str) -> None:
    """The other process: one change per command line read, its commit time printed."""
    from mailcall.core.policy.load import load_policy
    from mailcall.userstore.service import UserStore
    from mailcall.userstore.sqlite_store import SqliteStore

    policy = load_policy(policy_path)
    store = UserStore(SqliteStore(store_path, timeout=30))
    print("ready", flush=True)
    for line in sys.stdin:
        verb, user, *rest = line.split()
        t0 = time.perf_counter()
        if verb == "set":
            store.set_absence(policy, user, start=AWAY_FROM, until=AWAY_UNTIL, backup=rest[0],
                              message="Away this week.", actor=user, origin="web")
        else:
            store.clear_absences(policy, user, actor=user, origin="web")
        committed = time.time()
        print(f"{committed:.6f} {(time.perf_counter() - t0) * 1e3:.3f}", flush=True)
    store.backend.close()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=5_000)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--writer", nargs=2, metavar=("POLICY", "STORE"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.writer:
        writer(*args.writer)
        return

    from policy_scale import generate
    from store_scale import seed

    from mailcall.core.decisions.plans import CallRequest, Ring
    from mailcall.core.decisions.routing import plan_call
    from mailcall.core.decisions.rules import default_rules
    from mailcall.core.host.plugin_manager import make_plugin_manager
    from mailcall.core.host.runtime import Runtime
    from mailcall.core.policy.load import load_policy
    from mailcall.userstore.overlay import StoreOverlay, attach, decision_policy
    from mailcall.userstore.sqlite_store import SqliteStore

    folder = Path(tempfile.mkdtemp(prefix="userstore-obey-"))
    policy_path = folder / "policy.toml"
    policy_path.write_text(generate(args.users, args.groups))
    pm = make_plugin_manager()

    # The peer: a full reload, as SIGHUP does it (parse + compile + snapshot swap).
    t0 = time.perf_counter()
    policy = load_policy(policy_path, pm=pm)
    t1 = time.perf_counter()
    runtime = Runtime(policy, pm)
    runtime.replace_policy(policy)
    reload_s = time.perf_counter() - t0
    print(f"peer: full policy reload of {args.users} users: {reload_s:.1f} s "
          f"(load_policy {t1 - t0:.1f} s + snapshot swap {time.perf_counter() - t1:.1f} s)")

    store_path = folder / "users" / "store.sqlite"
    seeding = SqliteStore(store_path)
    seed(seeding, args.users)
    seeding.close()
    child = subprocess.Popen([sys.executable, __file__, "--writer", str(policy_path),
                              str(store_path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True, bufsize=1)
    overlay = StoreOverlay.for_file(store_path)
    t0 = time.perf_counter()
    assert overlay.open(), overlay.problem
    print(f"serving process: index of {len(overlay.index or ())} users loaded in "
          f"{time.perf_counter() - t0:.1f} s (once, at start)")
    attach(runtime, overlay)
    rules = default_rules()
    assert child.stdout is not None and child.stdin is not None
    assert child.stdout.readline().strip() == "ready"

    rnd = random.Random(11)
    # Sales users (they reroute an absent user's calls) with no absence in the policy file.
    sales = [i for i in range(3, args.users - 3, 3) if i % 50]
    latency_ms, api_ms, decisions = [], [], []
    for _ in range(args.changes):
        i = rnd.choice(sales)
        user, backup = f"u{i}", f"u{i + 3}"
        request = CallRequest(callee=str(100000 + i), caller="", at=DECIDE_AT, state="busy")
        for verb, expected in (("set", backup), ("clear", user)):
            child.stdin.write(f"{verb} {user} {backup}\n")
            child.stdin.flush()
            spins = 0
            while True:
                t_dec = time.perf_counter()
                plan = plan_call(decision_policy(runtime), request, rules)
                decisions.append((time.perf_counter() - t_dec) * 1e6)
                first = next((s.who for s in plan.steps if isinstance(s, Ring)), None)
                obeyed = time.time()
                if verb == "clear" and first is None:
                    first = user  # busy and not absent: straight to voicemail
                if (first == expected) if verb == "set" else (first != backup):
                    break
                spins += 1
            committed, took = child.stdout.readline().split()
            latency_ms.append(max(0.0, (obeyed - float(committed)) * 1e3))
            api_ms.append(float(took))
    child.stdin.close()
    child.wait(30)

    base = []
    request = CallRequest(callee="100003", caller="", at=DECIDE_AT, state="busy")
    for _ in range(2000):
        t0 = time.perf_counter()
        plan_call(policy, request, rules)
        base.append((time.perf_counter() - t0) * 1e6)

    def line(name: str, values: list[float], unit: str) -> str:
        return (f"{name:<52} p50 {statistics.median(values):8.2f} {unit}  "
                f"p99 {pct(values, 0.99):8.2f} {unit}  max {max(values):8.2f} {unit}")

    print(f"{len(latency_ms)} changes (absence set, then cleared) at {datetime.now(UTC):%Y-%m-%d}")
    print(line("change committed -> next decision obeys it", latency_ms, "ms"))
    print(line("the change itself in the writer (checks+fsync)", api_ms, "ms"))
    print(line("decision with the store (decision_policy+plan)", decisions, "µs"))
    print(line("decision on the compiled policy alone", base, "µs"))
    print(f"worst change -> obeyed: {max(latency_ms):.1f} ms (target < 1000 ms); "
          f"peer, a full reload: {reload_s * 1e3:.0f} ms")
    overlay.close()


if __name__ == "__main__":
    main()
