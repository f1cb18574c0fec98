"""Policy core at scale: compile a generated policy of 100,000 users and 5,000 groups,
then time call decisions on it.

Targets (issue 2): compile < 3 s and < 400 MB; a call decision < 50 µs at p99.
Peers in the same run, so figures compare across machines: the stdlib's
`tomllib.loads` of the same text (reading the file, before any validation) and
the bare cost of one dict lookup per decision. "compile" is what runs on every
load and reload once the TOML is parsed: validation of every field, profile
inheritance, overrides, references and loops, and the indexes. At this size
users normally come from a directory plugin (`mailcall_directory_users`), which
feeds compile directly; the TOML parse time is printed beside it all the same.

    python bench/policy_scale.py [--users 100000] [--groups 5000] [--calls 20000]
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time
import tomllib
import tracemalloc
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from mailcall.core.decisions.plans import CallRequest
from mailcall.core.decisions.routing import plan_call
from mailcall.core.decisions.rules import default_rules
from mailcall.core.policy.compile import compile_policy
from mailcall.core.policy.files import RawPolicy, merge
from mailcall.core.policy.load import installed_offers

HEAD = """\
[organisation]
name = "Big Org"
domain = "big.example"
timezone = "Europe/Paris"
country = "FR"
schedule = "office"

[channels]
sms_gateway = "{number}@sms.big.example"

[schedules.office]
monday = ["08:30-12:30", "13:30-18:00"]
tuesday = ["08:30-12:30", "13:30-18:00"]
wednesday = ["08:30-12:30", "13:30-18:00"]
thursday = ["08:30-12:30", "13:30-18:00"]
friday = ["08:30-12:30", "13:30-17:00"]
holidays = [2026-12-25]

[profiles.office]
[profiles.office.features]
voicemail = { formats = ["opus", "wav"] }

[profiles.sales]
extends = "office"
[profiles.sales.features]
notify = { mail = true, voicemail = true, media = ["sms"], hours = "office" }
reroute = { enabled = true, mobile = true }
greetings = ["unavailable", "busy", "absence"]
"""


def generate(users: int, groups: int, seed: int = 1) -> str:
    rnd = random.Random(seed)
    out = [HEAD]
    per_group = max(1, users // groups)
    for i in range(users):
        sales = i % 3 == 0
        ext = 100000 + i
        g = (i // per_group) % groups
        out.append(
            f'[users.u{i}]\nname = "User {i}"\nemail = "u{i}@big.example"\n'
            f'profile = "{"sales" if sales else "office"}"\nextensions = ["{ext}"]\n'
            f'numbers = ["+3314{i:07d}"]\n'
            + (f'mobile = "+3361{i:07d}"\n' if sales else "")
            + f'backups = ["@g{g}"]\n'
        )
    for g in range(groups):
        members = ", ".join(f'"u{g * per_group + k}"' for k in range(min(per_group, 5)))
        out.append(f'[groups.g{g}]\nmembers = [{members}]\nextensions = ["{900000 + g}"]\n')
    start = datetime(2026, 12, 1, tzinfo=ZoneInfo("Europe/Paris"))
    for i in range(0, users, 50):
        day = start + timedelta(days=rnd.randrange(30))
        out.append(f'[[absences]]\nuser = "u{i}"\nfrom = {day:%Y-%m-%dT%H:%M:%S}\n'
                   f'until = {day + timedelta(days=5):%Y-%m-%dT%H:%M:%S}\n')
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=100_000)
    ap.add_argument("--groups", type=int, default=5_000)
    ap.add_argument("--calls", type=int, default=20_000)
    args = ap.parse_args()
    text = generate(args.users, args.groups)
    print(f"policy: {args.users} users, {args.groups} groups, {len(text) / 1e6:.1f} MB of TOML")

    gc.collect()
    t0 = time.perf_counter()
    tables = tomllib.loads(text)
    parse_s = time.perf_counter() - t0

    def compile_tables():
        raw = RawPolicy(files=["generated.toml"], texts={"generated.toml": text})
        merge(raw, tables, "generated.toml", (), [])
        return compile_policy(raw, offered=installed_offers())

    gc.collect()
    t0 = time.perf_counter()
    policy = compile_tables()
    compile_s = time.perf_counter() - t0
    del policy
    gc.collect()
    # Memory in a second run: tracemalloc slows allocation, so it must not time the first.
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    policy = compile_tables()
    after, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    peak -= before
    retained = after - before
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    # As `mailcall serve` does: the snapshot is immutable, so the cyclic GC need not scan it.
    gc.freeze()
    # Decisions: a mix of extensions, numbers, groups, busy states, hours and absences.
    rnd = random.Random(2)
    rules = default_rules()
    base = datetime(2026, 12, 1, 8, 0, tzinfo=ZoneInfo("Europe/Paris"))
    requests = []
    for _ in range(args.calls):
        i = rnd.randrange(args.users)
        group_ext = str(900000 + rnd.randrange(args.groups))
        callee = rnd.choice([str(100000 + i), f"+3314{i:07d}", group_ext])
        at = base + timedelta(days=rnd.randrange(20), minutes=rnd.randrange(14 * 60))
        requests.append(CallRequest(callee=callee, caller="+33612345678", at=at,
                                    state=rnd.choice(["unknown", "unknown", "busy"])))
    for r in requests[:500]:
        plan_call(policy, r, rules)
    lat = []
    for r in requests:
        t = time.perf_counter_ns()
        plan_call(policy, r, rules)
        lat.append(time.perf_counter_ns() - t)
    lat.sort()
    floor = []
    for r in requests:
        t = time.perf_counter_ns()
        policy.by_extension.get(r.callee)
        floor.append(time.perf_counter_ns() - t)
    floor.sort()

    def pct(values: list[int], p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))] / 1000

    print(f"{'measure':<34}{'value':>12}{'target':>12}")
    print(f"{'TOML parse, stdlib tomllib (peer)':<34}{parse_s:>11.2f}s")
    print(f"{'compile (validate, resolve, index)':<34}{compile_s:>11.2f}s{'< 3 s':>12}")
    print(f"{'  ratio to the TOML parse':<34}{compile_s / parse_s:>11.2f}x")
    print(f"{'load from file (parse + compile)':<34}{parse_s + compile_s:>11.2f}s")
    print(f"{'compile peak memory (tracemalloc)':<34}{peak / 1e6:>10.0f}MB{'< 400 MB':>12}")
    print(f"{'compiled snapshot retained':<34}{retained / 1e6:>10.0f}MB")
    print(f"{'process max RSS':<34}{rss_mb:>10.0f}MB")
    print(f"{'call decision p50':<34}{pct(lat, 0.5):>10.1f}µs")
    print(f"{'call decision p99':<34}{pct(lat, 0.99):>10.1f}µs{'< 50 µs':>12}")
    print(f"{'dict lookup p99 (floor)':<34}{pct(floor, 0.99):>10.2f}µs")
    print(f"{'decisions per second (mean)':<34}{1e9 / statistics.fmean(lat):>11.0f}")
    ok = compile_s < 3 and peak / 1e6 < 400 and pct(lat, 0.99) < 50
    print("targets met" if ok else "TARGETS MISSED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
