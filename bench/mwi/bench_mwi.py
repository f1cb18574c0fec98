"""The lamp's three figures, each beside its anchor, in one run on real peers.

(1) latency: \\Seen set by an IMAP client -> message-summary NOTIFY received by a
    sipp phone (real Dovecot IMAPSieve trigger, real Asterisk res_pjsip_mwi),
    p50/p99 over N toggles; anchor: app_voicemail's pollmailboxes, whose
    default period is 30 s (a change waits 0-30 s, 15 s on average);
(2) reconcile of M mailboxes (one sealed voice message each, Maildir) through
    the master user with a bounded number of IMAP connections, counts and
    MWIUpdate to the real Asterisk; beside the cost of one mailbox alone, and
    the CPU time mailcall, Dovecot and Asterisk spent (the machine is shared:
    wall time moves with its load, CPU time much less). Dovecot is set up as
    docs/mwi.md recommends for large sites (services, SSHA512 master hash);
    ``--stock`` and ``--scheme SHA512-CRYPT`` show what those choices save;
(3) memory per watched mailbox: the service's tables for K mailboxes
    (tracemalloc), and K = 100,000 against the 200 MB budget.

Run as root: .venv/bin/python bench/mwi/bench_mwi.py [--toggles 50] [--mailboxes 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.support

from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.deposit.headers import serialise
from mailcall.deposit.seal import deposit_key
from mailcall.mwi.config import AmiSettings, LampSettings, MwiSettings
from mailcall.mwi.counts import counts
from mailcall.mwi.imap import ImapCounter, ImapSettings
from mailcall.mwi.ledger import Ledger
from mailcall.mwi.service import MwiService
from mailcall.mwi.watched import watched_users
from tests.support.dovecot import (
    MAIL_UID,
    Dovecot,
    DovecotFactory,
    configure_private,
    master_passdb,
)

ANCHOR_S = 30.0


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# ------------------------------------------------------------------ (1) latency

async def latency(toggles: int) -> list[float]:
    import pytest  # noqa: F401 - the test helpers below import it

    from mailcall.mwi.service import MwiService as Service
    from tests.mwi.live import Lamp, start_asterisk, start_phone
    from tests.mwi.support import start_mail

    dovecots = DovecotFactory(prefix="mailcall-bench-dovecot-")
    mail = start_mail(dovecots)
    work = Path(tempfile.mkdtemp(prefix="mailcall-bench-sipp-"))
    phone, port = start_phone(work)
    ast = start_asterisk(port)
    secret = work / "ami.secret"
    secret.write_text(ast.ami_secret + "\n")
    secret.chmod(0o600)
    service = Service(mail.runtime, mail.settings(ami_port=ast.ami_port,
                                                  ami_secret_file=str(secret)))
    loop = asyncio.get_running_loop()
    out: list[float] = []
    try:
        await service.start()
        await service.ami.wait_connected(5)
        await loop.run_in_executor(None, mail.deposit, "alice", "bench-1")
        service.poke("alice")
        lamp = Lamp(phone)
        await loop.run_in_executor(None, lamp.wait_for, "yes", "1/0", 0)
        client = mail.imap("alice")
        client.select("Voicemail")
        for i in range(toggles):
            seen = i % 2 == 0
            n = len(lamp.poll())
            t0 = time.monotonic()
            await loop.run_in_executor(None, client.store, "1",
                                       "+FLAGS" if seen else "-FLAGS", "\\Seen")
            got = await loop.run_in_executor(
                None, lamp.wait_for, "no" if seen else "yes", "0/1" if seen else "1/0", n)
            out.append(got.at - t0)
            await asyncio.sleep(0.3)  # past min_interval: each toggle is its own update
        client.logout()
    finally:
        await service.stop(1.0)
        phone.stop()
        ast.stop()
        dovecots.stop_all()
        shutil.rmtree(ast.root, ignore_errors=True)
        shutil.rmtree(mail.work, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)
    return out


# ---------------------------------------------------------------- (2) reconcile

MASTER_PW = "bench-master"


# What docs/mwi.md and contrib/dovecot/91-mailcall-mwi.conf recommend for large sites.
TUNED_IMAP = "  service_count = 1000\n  process_min_avail = 8"
TUNED_LOGIN = "  service_count = 0\n  process_min_avail = 2"
IMAP_PROCESS_LIMIT = 64
MASTER_SCHEME = "SSHA512"
"""The master password's scheme the docs recommend (a long random secret: no key stretching)."""


def master_hash(scheme: str) -> str:
    import subprocess

    return subprocess.run(["doveadm", "pw", "-s", scheme, "-p", MASTER_PW], check=True,
                          capture_output=True, text=True).stdout.strip()


def make_site(root: Path, n: int, key: bytes, tuned: bool,
              scheme: str = MASTER_SCHEME) -> Dovecot:
    """n users, each with a Voicemail folder holding one sealed, unseen voice message."""
    from datetime import UTC, datetime

    from mailcall.core.decisions.plans import DepositPlan
    from mailcall.deposit.voice_message import Origin, build_voice_message

    imap_service = TUNED_IMAP if tuned else ""
    login_service = TUNED_LOGIN if tuned else ""
    extra = master_passdb(root, "mailcall-mwi", master_hash(scheme), hashed=True) + f"""
service imap {{
  process_limit = {IMAP_PROCESS_LIMIT}
{imap_service}
}}
service imap-login {{
{login_service}
}}
"""
    d = configure_private(users=[f"u{i}@bench.example" for i in range(n)], extra=extra,
                          root=root)
    origin = Origin(sender="mailcall@bench.example", domain="bench.example", timezone=UTC)
    for i in range(n):
        user = f"u{i}@bench.example"
        home = root / "home" / f"u{i}"
        plan = DepositPlan(mailbox=f"u{i}", recipient=user, display_name=f"U {i}",
                           language="en", kind="voice", audio_format="wav", fax_formats=(),
                           transcription=False, notify=(), explanation=())
        dep = VoiceMessage(call_id=f"b{i}", mailbox=f"u{i}", caller_number="+33612345678",
                           caller_name="Bench", at=datetime.now(UTC), reason="busy",
                           recording=None)
        msg = build_voice_message(dep, plan, origin, recording=None, encoder=None,
                                  workdir=root, key=key)
        folder = home / "Maildir" / ".Voicemail"
        for sub in ("cur", "new", "tmp"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        (folder / "new" / f"{int(time.time())}.b{i}.bench").write_bytes(serialise(msg))
    for dirpath, _dirnames, filenames in os.walk(root / "home"):
        os.chown(dirpath, MAIL_UID, MAIL_UID)
        for f in filenames:
            os.chown(os.path.join(dirpath, f), MAIL_UID, MAIL_UID)
    d.start()
    return d


TICK = os.sysconf("SC_CLK_TCK")


def tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live children (Dovecot's
    master forks every service): the figure the machine's load does not change much."""
    def stat(p: int) -> list[str]:
        with open(f"/proc/{p}/stat") as f:
            text = f.read()
        return text[text.rindex(")") + 2:].split()

    f = stat(pid)
    total = sum(int(x) for x in f[11:15])
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                g = stat(int(entry))
            except OSError:
                continue
            if int(g[1]) == pid:
                total += int(g[11]) + int(g[12])
    return total / TICK


def own_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def reconcile(n: int, connections: int, tuned: bool,
                    scheme: str = MASTER_SCHEME) -> dict[str, float]:
    from tests.mwi.live import start_asterisk
    from tests.support.asterisk import free_udp_port

    root = Path(tempfile.mkdtemp(prefix="mailcall-bench-site-"))
    os.chmod(root, 0o755)
    spool = root / "spool"
    spool.mkdir(mode=0o700)
    key = deposit_key(spool)
    t0 = time.monotonic()
    d = make_site(root, n, key, tuned, scheme)
    setup = time.monotonic() - t0
    ast = start_asterisk(free_udp_port())
    secret = root / "ami.secret"
    secret.write_text(ast.ami_secret + "\n")
    secret.chmod(0o600)
    (root / "imap.secret").write_text(MASTER_PW + "\n")
    users = {f"u{i}": SimpleNamespace(
        id=f"u{i}", email=f"u{i}@bench.example", extensions=(),
        features=SimpleNamespace(voicemail=SimpleNamespace(enabled=True))) for i in range(n)}
    # The service registers its hooks (the lamp's counts) with the host's plugin manager.
    runtime = SimpleNamespace(policy=SimpleNamespace(users=users),
                              setting=lambda name: str(spool),
                              pm=make_plugin_manager(entrypoints=False))
    settings = MwiSettings(
        path=root / "mwi.toml", ami=AmiSettings(port=ast.ami_port, secret_file=str(secret)),
        imap=ImapSettings(port=d.imap_port, master_user="mailcall-mwi",
                          password_file=str(root / "imap.secret"),
                          max_connections=connections),
        lamp=LampSettings(reconcile_interval=86400))
    out: dict[str, float] = {"setup_s": setup}
    for _ in range(100):
        if (d.base_dir / "master.pid").exists():
            break
        time.sleep(0.05)
    dovecot_pid = int((d.base_dir / "master.pid").read_text())
    assert ast.proc is not None
    ast_pid = ast.proc.pid

    def cpu() -> tuple[float, float, float]:
        return own_cpu(), tree_cpu(dovecot_pid), tree_cpu(ast_pid)

    def spent(before: tuple[float, float, float], key: str) -> None:
        after = cpu()
        for name, a, b in zip(("mailcall", "dovecot", "asterisk"), before, after, strict=True):
            out[f"{key}_cpu_{name}_s"] = b - a
    try:
        counter = ImapCounter(settings.imap, key=lambda: key)
        # single-mailbox cost, cold (first access indexes the folder) and warm
        t = time.monotonic()
        counter.count("u0@bench.example", "u0@bench.example")
        out["one_cold_ms"] = (time.monotonic() - t) * 1000
        warm = []
        for _ in range(20):
            t = time.monotonic()
            counter.count("u0@bench.example", "u0@bench.example")
            warm.append((time.monotonic() - t) * 1000)
        out["one_warm_ms"] = statistics.median(warm)
        service = MwiService(runtime, settings)
        c0 = cpu()
        await service.start()  # starts the reconcile of every mailbox
        t = time.monotonic()
        await service.ami.wait_connected(5)
        await service.reconciled()
        out["reconcile_s"] = time.monotonic() - t + 0.0
        out["reconcile_internal_s"] = service.last_reconcile_seconds or 0.0
        while service.ledger.due or service.publisher._inflight:
            await asyncio.sleep(0.05)
        out["reconcile_and_published_s"] = time.monotonic() - t
        spent(c0, "cold")
        out["published"] = service.publisher.sent
        out["counted_ok"] = sum(1 for u in users if service.counts(u) == counts(1, 0))
        await service.stop(1.0)
        # the second pass: folders already indexed, what the periodic reconcile costs
        service2 = MwiService(runtime, settings)
        service2.ami = service.ami.__class__("127.0.0.1", 1, "x", str(secret))
        service2.publisher.ami = service2.ami
        c0 = cpu()
        t = time.monotonic()
        await service2.refresher.start()
        service2._refresh_watch()
        await service2.refresher.count_all(service2._watched)
        out["reconcile_warm_s"] = time.monotonic() - t
        spent(c0, "warm")
        await service2.refresher.stop()
    finally:
        ast.stop()
        d.stop()
        shutil.rmtree(ast.root, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)
    return out


# ------------------------------------------------------------------ (3) memory

def memory(k: int) -> tuple[float, float]:
    """(steady bytes per mailbox, extra bytes per mailbox while a reconcile is pending)."""
    users = {f"user{i:06d}": SimpleNamespace(
        id=f"user{i:06d}", email=f"user{i:06d}@example.org", extensions=(f"{2000 + i}",),
        features=SimpleNamespace(voicemail=SimpleNamespace(enabled=True))) for i in range(k)}
    settings = MwiSettings(path=Path("/dev/null"))
    policy = SimpleNamespace(users=users)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    watched = watched_users(policy, settings)
    by_login = {w.login.lower(): w.user for w in watched.values()}
    ledger = Ledger()
    for i, w in enumerate(watched.values()):
        ledger.observe(w.mailbox, counts(i % 4, i % 9))
        item = ledger.take(float(i))
        if item:
            ledger.sent(*item)
    after = tracemalloc.get_traced_memory()[0]

    async def pending_reconcile() -> int:
        # The real Refresher with every user poked by count_all, workers not started:
        # the state a reconcile holds before its first count returns.
        from mailcall.mwi.refresher import Refresher

        refresher = Refresher(lambda user: counts(0, 0), lambda user, result: None)
        task = asyncio.create_task(refresher.count_all(watched))
        await asyncio.sleep(0)
        assert refresher.waiting == k
        used = tracemalloc.get_traced_memory()[0]
        task.cancel()
        return used

    during = asyncio.run(pending_reconcile())
    tracemalloc.stop()
    del by_login
    return (after - before) / k, (during - after) / k


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--toggles", type=int, default=50)
    ap.add_argument("--mailboxes", type=int, default=10000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--stock", action="store_true",
                    help="Dovecot's default imap/imap-login services (a process per login)")
    ap.add_argument("--scheme", default=MASTER_SCHEME,
                    help="the master password's scheme in Dovecot (SHA512-CRYPT: the cost "
                         "of key stretching at every master login)")
    ap.add_argument("--skip", default="", help="comma list of latency,reconcile,memory")
    args = ap.parse_args()
    skip = set(args.skip.split(","))
    if "memory" not in skip:
        per, extra = memory(100_000)
        print(f"memory: {per:.0f} bytes per watched mailbox (tables of the service, "
              f"tracemalloc), {extra:.0f} more while a reconcile is pending; 100,000 "
              f"mailboxes = {per * 100_000 / 1e6:.1f} MB, {(per + extra) * 100_000 / 1e6:.1f} "
              f"MB at the peak of a reconcile (budget 200 MB)")
    if "latency" not in skip:
        lat = asyncio.run(latency(args.toggles))
        print(f"latency \\Seen -> NOTIFY over {len(lat)} toggles: p50 {pct(lat, 50)*1000:.0f} ms, "
              f"p99 {pct(lat, 99)*1000:.0f} ms, max {max(lat)*1000:.0f} ms; anchor: "
              f"app_voicemail pollmailboxes default {ANCHOR_S:.0f} s "
              f"(mean wait {ANCHOR_S/2:.0f} s, worst {ANCHOR_S:.0f} s)")
    if "reconcile" not in skip:
        r = asyncio.run(reconcile(args.mailboxes, args.connections, not args.stock,
                                  args.scheme))
        mode = ("stock services" if args.stock else
                "imap service_count=1000 process_min_avail=8, imap-login service_count=0")
        print(f"reconcile of {args.mailboxes} mailboxes (Dovecot: {mode}, imap process_limit "
              f"{IMAP_PROCESS_LIMIT}, master password {args.scheme}), at most "
              f"{args.connections} IMAP connections: "
              f"counted in {r['reconcile_s']:.1f} s (cold: first access indexes each folder), "
              f"all {int(r['published'])} MWIUpdate accepted after "
              f"{r['reconcile_and_published_s']:.1f} s; warm pass {r['reconcile_warm_s']:.1f} s; "
              f"correct counts {int(r['counted_ok'])}/{args.mailboxes}; one mailbox alone: "
              f"{r['one_cold_ms']:.1f} ms cold, {r['one_warm_ms']:.1f} ms warm "
              f"(x{args.mailboxes} serial = {r['one_warm_ms'] * args.mailboxes / 1000:.1f} s); "
              f"site set-up {r['setup_s']:.1f} s")
        for key in ("cold", "warm"):
            parts = {name: r[f"{key}_cpu_{name}_s"] for name in ("mailcall", "dovecot",
                                                                  "asterisk")}
            total = sum(parts.values())
            print(f"  CPU of the {key} pass: " + ", ".join(
                f"{name} {v:.1f} s" for name, v in parts.items())
                + f" = {total / args.mailboxes * 1000:.2f} ms per mailbox "
                f"(on {os.cpu_count()} CPUs, idle: >= {total / (os.cpu_count() or 1):.1f} s)")
        print(f"  load average at the end: {os.getloadavg()[0]:.1f} "
              f"(other jobs share the machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
