"""The phone menu's latencies, on the real Dovecot with 2,000 messages, in one run.

(1) key press -> first audio command of the next voicemail ("6" during a message's
    audio -> the STREAM FILE of the next one's first envelope sentence), beside the
    floor measured in the same run and the same server: a handler that answers a key
    with STREAM FILE of a file already on disk;
(2) "2" at the main menu -> the first audio after it, which is the mail count, a
    sentence from the speaker's cache (speech/cache.py), not the mail; and -> the
    first sentence of the 10 KB HTML mail's body, the row that carries the issue's
    150 ms target (the mail's own first words, after its envelope);
(3) 50 calls at once: the login storm (each types its PIN at the same moment: PIN #
    -> the first audio, "one moment please" included, p50/p99/max; PIN # -> the menu's
    own first audio; and each caller's longest silence from PIN # until the menu
    speaks), then, once all are in the menu, "1" and "6"
    through their voicemail, first spread (each listens --think s, the callers offset
    over that time), then all 50 pressing "6" at the same instant (each listens
    --sync-think s, so what is made ahead is made, then they wait for one another and
    press together), p99 of (1) for both.

The mailbox: 1,000 sealed voicemails (mailcall's deposit path, Opus) and 1,000 unread
mails, the newest a 10 KB HTML one, on a private Dovecot started by the tests' own
tests/support/dovecot.py (DovecotFactory). mailcall (its AGI server, speech engine,
decoder, PIN checks, IMAP sessions) runs in a forked child process pinned to one CPU
(``os.sched_setaffinity`` in the child before it starts any thread: every thread it
starts inherits that CPU); the callers are the tests' scripted fake Asterisk
(tests/phonemenu/phone.py, it answers STREAM FILE at once: no playback time is counted)
in the parent process, on the other CPUs when there are any; Dovecot is not pinned.
Latencies are taken on the callers' side (the key sent -> the command received), as
Asterisk would see them.

Run as root: .venv/bin/python bench/phonemenu/bench_menu.py [--voice 1000] [--mail 1000]
Another tree's mailcall (the code before a change, from ``git worktree add``), driven by
this bench: .venv/bin/python bench/phonemenu/other_tree.py /tmp/old-tree [options]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mailcall.agi.pin_guard import PinGuard  # noqa: E402
from mailcall.agi.server import AgiServer  # noqa: E402
from mailcall.agi.service import collect_handlers  # noqa: E402
from mailcall.core.policy.pins import N, hash_pin  # noqa: E402
from tests.phonemenu.phone import Phone, Press, run_phone  # noqa: E402
from tests.phonemenu.support import (  # noqa: E402
    LIVE_POLICY,
    PIN,
    RECORDING,
    cleanup,
    html_mail,
    plain_mail,
    start_mailboxes,
)
from tests.support.dovecot import DovecotFactory  # noqa: E402

AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
CHUNK = r"STREAM FILE \S*/call-\S*/[0-9a-f]{12}-0001 "
SPOKEN = re.compile(r"STREAM FILE (\S*/call-\S*/[0-9a-f]{12}-\d{4}) ")
"""A sentence the menu spoke into the call's folder (8 kHz signed linear, .sln)."""
FLOOR_FILE = RECORDING.with_suffix("")
MANY_USER_CONNECTIONS = "\nprotocol imap {\n  mail_max_userip_connections = 200\n}\n"
"""50 calls into one mailbox are 50 IMAP sessions of one user from one address;
Dovecot's default allows 10 (mail_max_userip_connections)."""
TICK = os.sysconf("SC_CLK_TCK")
MAILCALL_TREE = Path(sys.modules["mailcall.agi"].__file__).resolve().parents[1]
"""Where the mailcall under test comes from (other_tree.py points it elsewhere)."""


def slots_of() -> str:
    try:
        from mailcall.phonemenu import admission
    except ImportError:
        return "none (this tree has no admission)"
    return f"{admission.SLOTS} at once, waited at most {admission.WAIT_S:g} s"


def html_body(size: int) -> str:
    para = ("<p>Bonjour Alice, voici le point sur la commande de tubes en acier inoxydable. "
            "La livraison est prévue jeudi, merci de confirmer l'adresse du quai.</p>\n")
    out = ["<html><body><table><tr><td>"]
    while sum(map(len, out)) < size:
        out.append(para)
    out.append("</td></tr></table></body></html>")
    return "".join(out)


def fill(boxes, voice: int, mail: int) -> None:
    t = time.perf_counter()
    for n in range(voice):
        boxes.voicemail("alice", f"bench-{n}", caller=f"+3361234{n % 10000:04d}",
                        name=f"Client {n}")
    for n in range(mail - 1):
        boxes.mail("alice", plain_mail(f"Note {n}", f"Texte du message {n}.",
                                       minutes_ago=60 + n))
    boxes.mail("alice", html_mail("Devis tubes inox", html_body(10_000), minutes_ago=1,
                                  language="fr"))
    print(f"mailbox filled: {voice} voicemails + {mail} unread mails in "
          f"{time.perf_counter() - t:.1f} s", flush=True)


# ------------------------------------------------------------------ the server (child)


async def floor_handler(session, runtime) -> str:
    """The floor: a key, then STREAM FILE of a file already on disk, as fast as can be."""
    await session.set_language("en")
    for _ in range(200):
        result = await session.stream_file("beep", "0123456789*#")
        if result.digit:
            await session.stream_file(str(FLOOR_FILE), "0123456789*#")
    return "FLOOR"


def serve(boxes, cpu: int, conn) -> None:
    """The forked mailcall process: pinned first, then the server."""
    os.sched_setaffinity(0, {cpu})
    asyncio.run(_serve(boxes, conn))


async def _serve(boxes, conn) -> None:
    handlers = collect_handlers(boxes.runtime)
    handlers["floor"] = floor_handler
    server = AgiServer(boxes.runtime, handlers, host="127.0.0.1", port=0)
    await server.start()
    conn.send(server.address)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)
    await stop.wait()
    await server.stop(2.0)


def cpu_of(pid: int) -> float:
    """CPU seconds (user + system, all threads) of process `pid` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# ------------------------------------------------------------------ the callers (parent)


def latencies(phone: Phone, target: str) -> list[float | None]:
    """ms from each key press to the next command matching `target` (None: none came)."""
    out: list[float | None] = []
    for pressed, _key in phone.pressed_at:
        nxt = next((t for t, line in phone.sent_at if t > pressed and re.search(target, line)),
                   None)
        out.append(None if nxt is None else (nxt - pressed) * 1000)
    return out


def present(values) -> list[float]:
    return [v for v in values if v is not None]


def login_ms(phone: Phone) -> float | None:
    """ms from the PIN typed to the menu's first audio (a stock prompt, a number or a
    spoken sentence): the PIN check, the IMAP login and both lists."""
    typed = next((t for t, line in phone.sent_at if "agent-pass" in line), None)
    if typed is None:
        return None
    said = next((t for t, line in phone.sent_at
                 if t > typed and line.startswith(("STREAM FILE", "SAY NUMBER"))), None)
    return None if said is None else (said - typed) * 1000


ONE_MOMENT = "STREAM FILE one-moment-please "
AUDIO_COMMAND = ("STREAM FILE", "SAY NUMBER")


def silences(phone: Phone, playback: bool) -> tuple[float | None, float | None]:
    """(ms from PIN # to the menu's own first audio, the longest silence in ms between
    PIN # and it): a gap is from the end of one sound (PIN # typed, or an audio command
    answered) to the next audio command. A stock prompt counts as ending when it is sent
    (the fake phone answers it at once: pessimistic, a real one-moment-please plays
    about 1 s); a spoken sentence lasts its duration when `playback` is on."""
    typed = next((t for t, line in phone.sent_at if "agent-pass" in line), None)
    if typed is None:
        return None, None
    quiet_since, longest = typed, 0.0
    for t, line in phone.sent_at:
        if t <= typed or not line.startswith(AUDIO_COMMAND):
            continue
        longest = max(longest, t - quiet_since)
        if not line.startswith(ONE_MOMENT):
            return (t - typed) * 1000, longest * 1000
        quiet_since = t + (spoken_seconds(line) if playback else 0.0)
    return None, None


def spoken_seconds(line: str) -> float:
    spoken = SPOKEN.match(line)
    if spoken is None:
        return 0.0
    try:
        return Path(spoken[1] + ".sln").stat().st_size / 16_000
    except OSError:  # the call's folder is gone: the call ended
        return 0.0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


class Group:
    """What the many callers share: barriers, listening times, the server's CPU marks."""

    def __init__(self, calls: int, spread: int, think: float, sync_think: float,
                 server_pid: int) -> None:
        self.calls, self.spread = calls, spread
        self.think, self.sync_think = think, sync_think
        self.menu = asyncio.Barrier(calls)
        self.sync = asyncio.Barrier(calls)
        self.server_pid = server_pid
        self.cpu: dict[str, float] = {}

    def mark(self, name: str) -> None:
        self.cpu.setdefault(name, cpu_of(self.server_pid))

    async def wait(self, barrier: asyncio.Barrier) -> None:
        """All callers meet; one that never comes (a failed call) breaks it, not the run."""
        try:
            await asyncio.wait_for(barrier.wait(), 180)
        except (TimeoutError, asyncio.BrokenBarrierError):
            await barrier.abort()


class ManyPhone(Phone):
    """One of the many callers. Press 0 ("1" at the main menu) once all are there, offset
    over --think; presses 1..spread each after --think s of audio; the others after
    --sync-think s of audio, all callers pressing at the same instant."""

    def __init__(self, group: Group, index: int, presses: int, *, playback: bool,
                 **kw) -> None:
        super().__init__([Press("GET DATA agent-pass", digits=PIN),
                          Press("STREAM FILE vm-onefor", key="1"),
                          *[Press(AUDIO, key="6") for _ in range(presses)]], **kw)
        self.group = group
        self.index = index
        self.playback = playback

    def answer(self, line: str, words: list[str]):
        before = len(self.pressed_at)
        reply = super().answer(line, words)
        if len(self.pressed_at) == before:
            spoken = SPOKEN.match(line) if self.playback else None
            if spoken and isinstance(reply, list):
                return self._played(reply, spoken[1])
            return reply
        return self._timed(reply, before)

    async def _played(self, reply, name: str):
        """As Asterisk: STREAM FILE answers once the sentence is played (2 bytes a sample,
        8,000 samples a second), so what the menu does after it waits that long."""
        try:
            seconds = Path(name + ".sln").stat().st_size / 16_000
        except OSError:
            seconds = 0.0
        await asyncio.sleep(seconds)
        return reply

    async def _timed(self, reply, k: int):
        g = self.group
        if k == 0:
            await g.wait(g.menu)
            g.mark("menu")
            await asyncio.sleep(g.think * self.index / g.calls)
        elif k <= g.spread:
            await asyncio.sleep(g.think)
        else:
            await asyncio.sleep(g.sync_think)
            await g.wait(g.sync)
            if k == g.spread + 1:
                g.mark("sync")
        self.pressed_at[k] = (time.monotonic(), self.pressed_at[k][1])
        return reply


def next_presses(count: int) -> list[Press]:
    return [Press("GET DATA agent-pass", digits=PIN), Press("STREAM FILE vm-onefor", key="1"),
            *[Press(AUDIO, key="6") for _ in range(count)]]


async def drive(args, host: str, port: int, server_pid: int) -> dict:
    # warm-up: phrases made once per process, the speech engine loaded
    await run_phone(Phone(next_presses(3), uniqueid="warm.1"), host, port, timeout=60)

    floor = Phone([Press("beep", key="6") for _ in range(args.presses)],
                  script="floor", uniqueid="floor.1")
    floor.rules.append(Press("beep", hangup=True))
    await run_phone(floor, host, port)

    one = Phone(next_presses(args.presses), uniqueid="one.1")
    await run_phone(one, host, port, timeout=60)

    mail_ms, body_ms = [], []
    for i in range(args.mail_calls):
        phone = Phone([Press("GET DATA agent-pass", digits=PIN),
                       Press("STREAM FILE vm-onefor", key="2"),
                       Press(r"STREAM FILE vm-prev", hangup=True)], uniqueid=f"mail.{i}")
        await run_phone(phone, host, port, timeout=60)
        mail_ms += present(latencies(phone, CHUNK))
        # the body's first sentence: the first chunk of the second speech run
        pressed = phone.pressed_at[0][0]
        after = [t for t, line in phone.sent_at
                 if t > pressed and re.search(r"/call-\S*/[0-9a-f]{12}-0001 ", line)]
        if len(after) >= 2:
            body_ms.append((after[-1] - pressed) * 1000)

    group = Group(args.calls, args.spread, args.think, args.sync_think, server_pid)
    calls = [ManyPhone(group, i, args.spread + args.sync, playback=not args.instant,
                       uniqueid=f"many.{i}")
             for i in range(args.calls)]
    group.mark("storm")
    t = time.perf_counter()
    await asyncio.gather(*(run_phone(p, host, port, timeout=180) for p in calls))
    wall = time.perf_counter() - t
    end_cpu = cpu_of(server_pid)
    per_call = [latencies(p, CHUNK) for p in calls]
    return {
        "floor": present(latencies(floor, r"STREAM FILE /")),
        "next": present(latencies(one, CHUNK)),
        "mail": mail_ms, "body": body_ms,
        "first": present(lat[0] for lat in per_call if lat),
        "spread": present(x for lat in per_call for x in lat[1:1 + args.spread]),
        "sync": present(x for lat in per_call for x in lat[1 + args.spread:]),
        "missing": sum(x is None for lat in per_call for x in lat),
        "login1": present([login_ms(one)]),
        "login50": present(map(login_ms, calls)),
        "menu1": present([silences(one, False)[0]]),
        "menu50": present(silences(p, not args.instant)[0] for p in calls),
        "quiet1": present([silences(one, False)[1]]),
        "quiet50": present(silences(p, not args.instant)[1] for p in calls),
        "cpu": {**group.cpu, "end": end_cpu},
        "wall": wall,
        "failed": [p.uniqueid for p in [one, *calls]
                   if any("/phrases/unavailable-" in c for c in p.commands)],
        "calls": len(calls),
    }


def report(args, r: dict, server_cpu: int, callers_cpus: set[int], dovecot) -> None:
    def row(name: str, values: list[float], target: str = "") -> None:
        print(f"{name:62s} n={len(values):4d}  p50 {pct(values, 50):7.1f}  "
              f"p95 {pct(values, 95):7.1f}  p99 {pct(values, 99):7.1f}  "
              f"max {max(values, default=float('nan')):7.1f} ms  {target}")

    print(f"\nmailcall under test: {MAILCALL_TREE}; login turns: {slots_of()}")
    print(f"mailbox: {args.voice} voicemails + {args.mail} unread mails, real Dovecot; "
          f"mailcall pinned to CPU {server_cpu}, callers on {sorted(callers_cpus)}; "
          f"PIN hash scrypt N={args.pin_cost}; the many callers' spoken sentences "
          f"{'answered at once' if args.instant else 'take their real duration'}")
    floor = r["floor"]
    row("floor: key -> STREAM FILE of a file on disk", floor)
    row("1 call: key 6 -> first audio of the next voicemail", r["next"], "(p95 < 100)")
    row("key 2 -> first audio: the mail count (a cached sentence)", r["mail"])
    row("key 2 -> first sentence of a 10 KB HTML mail's body", r["body"], "(p95 < 150)")
    row(f"{args.calls} calls, key 1 -> first voicemail (offset over {args.think:g} s)",
        r["first"])
    row(f"{args.calls} calls, spread over {args.think:g} s: key 6 -> next voicemail",
        r["spread"], "(p99 < 300)")
    row(f"{args.calls} calls pressing at the same instant: key 6 -> next voicemail",
        r["sync"], "(p99 < 300)")
    row("PIN # -> the menu's first audio, 1 call", r["login1"])
    row(f"PIN # -> the menu's first audio, {args.calls} calls typing it at once",
        r["login50"], "(one moment please included)")
    row("PIN # -> the menu's own first audio (not one moment), 1 call", r["menu1"])
    row(f"PIN # -> the menu's own first audio, {args.calls} calls", r["menu50"])
    row("longest silence from PIN # until the menu speaks, 1 call", r["quiet1"],
        "(< 3000)")
    row(f"longest silence from PIN # until the menu speaks, {args.calls} calls",
        r["quiet50"], "(< 3000, per caller)")
    if r["missing"]:
        print(f"key presses of the many calls never answered with audio: {r['missing']}")
    print(f"calls that heard 'mailbox unreachable': {len(r['failed'])} of {r['calls'] + 1}")
    if r["failed"]:
        print("Dovecot log tail:\n" + dovecot.log_text()[-3000:])
    fp95, fp99 = max(pct(floor, 95), 0.01), max(pct(floor, 99), 0.01)
    print("same-run ratios to the floor: "
          f"1 call next p95/floor p95 = {pct(r['next'], 95) / fp95:.0f}; "
          f"mail p95/floor p95 = {pct(r['mail'], 95) / fp95:.0f}; "
          f"spread p99/floor p99 = {pct(r['spread'], 99) / fp99:.0f}; "
          f"same instant p99/floor p99 = {pct(r['sync'], 99) / fp99:.0f}; "
          f"{args.calls} calls p99 / 1 call p99 = "
          f"{pct(r['spread'], 99) / max(pct(r['next'], 99), 0.01):.1f} (spread), "
          f"{pct(r['sync'], 99) / max(pct(r['next'], 99), 0.01):.1f} (same instant)")
    cpu = r["cpu"]
    if "menu" in cpu:
        print(f"mailcall CPU per login in the storm (PIN, IMAP login, both lists): "
              f"{(cpu['menu'] - cpu['storm']) / args.calls * 1000:.0f} ms "
              f"({cpu['menu'] - cpu['storm']:.1f} s for {args.calls})")
    if "menu" in cpu and "sync" in cpu:
        spread_n = len(r["spread"]) + len(r["first"])
        sync_n = len(r["sync"])
        spread_cpu = cpu["sync"] - cpu["menu"]
        sync_cpu = cpu["end"] - cpu["sync"]
        print(f"mailcall CPU per key press: {spread_cpu / max(spread_n, 1) * 1000:.0f} ms "
              f"(spread phase: {spread_cpu:.1f} s / {spread_n}), "
              f"{sync_cpu / max(sync_n, 1) * 1000:.0f} ms (same-instant phase: "
              f"{sync_cpu:.1f} s / {sync_n})")
    print(f"{args.calls} calls x {1 + args.spread + args.sync} presses in {r['wall']:.1f} s; "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voice", type=int, default=1000)
    parser.add_argument("--mail", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--mail-calls", type=int, default=20)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--spread", type=int, default=10,
                        help="presses of '6' per call in the spread phase")
    parser.add_argument("--sync", type=int, default=10,
                        help="presses of '6' per call, all calls at the same instant")
    parser.add_argument("--cpu", type=int, default=0, help="the CPU mailcall is pinned to")
    parser.add_argument("--think", type=float, default=3.0,
                        help="seconds each caller listens before pressing in the spread phase "
                             "(0: at once, in a loop)")
    parser.add_argument("--sync-think", type=float, default=3.0,
                        help="seconds each caller listens before all press together")
    parser.add_argument("--pin-cost", type=int, default=N,
                        help=f"scrypt N of alice's PIN hash (default {N}, new hashes' cost)")
    parser.add_argument("--login-slots", type=int, default=None,
                        help="listings under way at once (phonemenu/admission.py SLOTS)")
    parser.add_argument("--instant", action="store_true",
                        help="the many callers answer the menu's spoken sentences at once, as "
                             "if they took no time to play (the worst case for work made "
                             "ahead); by default each takes its real duration, as in Asterisk")
    args = parser.parse_args()
    if args.login_slots is not None:
        from mailcall.phonemenu import admission
        admission.SLOTS = args.login_slots

    factory = DovecotFactory(prefix="mailcall-bench-dovecot-", extra=MANY_USER_CONNECTIONS)
    # alice's PIN hashed at the cost asked (new hashes' by default; 16384: the old one)
    policy = "\n".join(f'pin = "{hash_pin(PIN, n=args.pin_cost)}"' if line.startswith("pin = ")
                       else line for line in LIVE_POLICY.read_text().splitlines()) + "\n"
    boxes = start_mailboxes(factory, policy)
    child = None
    try:
        config = boxes.phone_config()
        config.write_text(config.read_text() + "max_connections = 64\ntimeout = 30.0\n")
        # 50 calls into one mailbox type 50 PINs at once: the shared guard would (rightly)
        # refuse past 5 guesses in flight; the bench measures the menu, not the lockout.
        boxes.runtime.pin_guard = PinGuard(max_failures=10_000)
        fill(boxes, args.voice, args.mail)
        if threading.active_count() > 1:
            print(f"warning: {threading.active_count()} threads before fork", flush=True)
        ctx = multiprocessing.get_context("fork")
        mine, theirs = ctx.Pipe()
        child = ctx.Process(target=serve, args=(boxes, args.cpu, theirs), daemon=True)
        child.start()
        host, port = mine.recv()
        print(f"mailcall server: pid {child.pid}", flush=True)
        others = os.sched_getaffinity(0) - {args.cpu}
        callers_cpus = others or {args.cpu}
        os.sched_setaffinity(0, callers_cpus)
        result = asyncio.run(drive(args, host, port, child.pid))
        report(args, result, args.cpu, callers_cpus, factory.started[0])
    finally:
        if child is not None and child.is_alive():
            mine.send("stop")
            child.join(10)
        factory.stop_all()
        cleanup(boxes)


if __name__ == "__main__":
    main()
