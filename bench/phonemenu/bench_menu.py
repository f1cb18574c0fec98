"""The phone menu's latencies, on the real Dovecot with 2,000 messages, in one run.

(1) key press -> first audio command of the next voicemail ("6" during a message's
    audio -> the STREAM FILE of the next one's first envelope sentence), p50/p95,
    beside the floor measured in the same run and the same server: a handler
    that answers a key with STREAM FILE of a file already on disk;
(2) key press -> first audio of a 10 KB HTML mail ("2" at the main menu -> its
    envelope's first sentence), and -> the first sentence of its body (envelope
    spoken, the mail fetched over IMAP, HTML made text, first sentence spoken);
(3) 50 calls at once, each typing its PIN at the same moment (the login storm: PIN ->
    first count said), then, once all are in the menu, pressing "1" and "6" through its
    voicemail: p99 of (1), with the
    callers pressing at once (--think 0, the worst case) or after listening a while to
    each message (--think 1.5: people, who press a key seconds apart, not a loop).

The mailbox: 1,000 sealed voicemails (mailcall's deposit path, Opus) and 1,000
unread mails, the newest a 10 KB HTML one. The caller is the scripted fake
Asterisk of tests/phonemenu (it answers STREAM FILE at once: no playback time
is counted). The server, its speech engine and the callers share this process,
pinned to one CPU; Dovecot runs beside it.

Run as root: .venv/bin/python bench/phonemenu/bench_menu.py [--voice 1000] [--mail 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from mailcall.agi.pin_guard import PinGuard  # noqa: E402
from mailcall.agi.server import AgiServer  # noqa: E402
from mailcall.agi.service import collect_handlers  # noqa: E402
from tests.phonemenu.phone import Phone, Press, run_phone  # noqa: E402
from tests.phonemenu.support import (  # noqa: E402
    PIN,
    RECORDING,
    cleanup,
    html_mail,
    plain_mail,
    start_mailboxes,
)
from tests.support.dovecot import Dovecot  # noqa: E402

AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
CHUNK = r"STREAM FILE \S*/call-\S*/[0-9a-f]{12}-0001 "
FLOOR_FILE = RECORDING.with_suffix("")


def dovecot_factory(made: list[Dovecot]):
    def start(plugin=None, users=(), extra=""):
        root = Path(tempfile.mkdtemp(prefix="mailcall-bench-dovecot-"))
        os.chmod(root, 0o755)
        # 50 calls into one mailbox are 50 IMAP sessions of one user from one address;
        # Dovecot's default allows 10 (mail_max_userip_connections).
        extra += "\nprotocol imap {\n  mail_max_userip_connections = 200\n}\n"
        d = Dovecot(root=root, plugin=dict(plugin or {}), extra=extra)
        d.write_config()
        for u in users:
            d.add_user(u)
        d.start()
        made.append(d)
        return d
    return start


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
          f"{time.perf_counter() - t:.1f} s")


def latencies(phone: Phone, target: str) -> list[float]:
    """ms from each key press to the next command matching `target`."""
    out = []
    for pressed, _key in phone.pressed_at:
        nxt = next((t for t, line in phone.sent_at if t > pressed and re.search(target, line)),
                   None)
        if nxt is not None:
            out.append((nxt - pressed) * 1000)
    return out


def login_ms(phone: Phone) -> float | None:
    """ms from the PIN typed to the first count said (a stock prompt, a number or a spoken
    sentence): the PIN check, the IMAP login and both lists."""
    typed = next((t for t, line in phone.sent_at if "agent-pass" in line), None)
    if typed is None:
        return None
    said = next((t for t, line in phone.sent_at
                 if t > typed and line.startswith(("STREAM FILE", "SAY NUMBER"))), None)
    return None if said is None else (said - typed) * 1000


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def floor_handler(session, runtime) -> str:
    """The floor: a key, then STREAM FILE of a file already on disk, as fast as can be."""
    await session.set_language("en")
    for _ in range(200):
        result = await session.stream_file("beep", "0123456789*#")
        if result.digit:
            await session.stream_file(str(FLOOR_FILE), "0123456789*#")
    return "FLOOR"


MENU_PHASE: dict[str, float] = {}
"""Process CPU time when all the many callers were in the menu."""


class TogetherPhone(Phone):
    """A caller who, once at the main menu, waits for all the others to be there too before
    pressing "1": the key presses then measure 50 calls in the menu, apart from the PIN
    checks of the login storm (scrypt, on purpose slow: measured on their own)."""

    def __init__(self, rules, barrier: asyncio.Barrier, offset: float = 0.0, **kw) -> None:
        super().__init__(rules, **kw)
        self.barrier = barrier
        self.offset = offset
        """Then this many seconds more: callers spread over one listening time, as people
        are (with --think 0 they all press at the same instant, the worst case)."""
        self.waited = False

    def answer(self, line: str, words: list[str]):
        reply = super().answer(line, words)
        if self.waited or "STREAM FILE vm-onefor" not in line:
            return reply
        self.waited = True
        return self._together(reply)

    async def _together(self, reply):
        if not isinstance(reply, list):
            reply = await reply
        await self.barrier.wait()
        MENU_PHASE.setdefault("cpu", time.process_time())
        await asyncio.sleep(self.offset)
        if self.pressed_at:
            self.pressed_at[-1] = (time.monotonic(), self.pressed_at[-1][1])
        return reply


def next_presses(count: int, think: float = 0.0) -> list[Press]:
    return [Press("GET DATA agent-pass", digits=PIN), Press("STREAM FILE vm-onefor", key="1"),
            *[Press(AUDIO, key="6", after=think) for _ in range(count)]]



async def run(args) -> None:
    made: list[Dovecot] = []
    boxes = start_mailboxes(dovecot_factory(made))
    try:
        config = boxes.phone_config()
        config.write_text(config.read_text() + "max_connections = 64\ntimeout = 30.0\n")
        # 50 calls into one mailbox type 50 PINs at once: the shared guard would (rightly)
        # refuse past 5 guesses in flight; the bench measures the menu, not the lockout.
        boxes.runtime.pin_guard = PinGuard(max_failures=10_000)
        fill(boxes, args.voice, args.mail)
        handlers = collect_handlers(boxes.runtime)
        handlers["floor"] = floor_handler
        server = AgiServer(boxes.runtime, handlers, host="127.0.0.1", port=0)
        await server.start()
        host, port = server.address
        try:
            # warm-up: phrases made once per process, the speech engine loaded
            await run_phone(Phone(next_presses(3), uniqueid="warm.1"), host, port, timeout=60)

            floor = Phone([Press("beep", key="6") for _ in range(args.presses)],
                          script="floor", uniqueid="floor.1")
            floor.rules.append(Press("beep", hangup=True))
            await run_phone(floor, host, port)
            floor_ms = latencies(floor, r"STREAM FILE /")

            one = Phone(next_presses(args.presses), uniqueid="one.1")
            await run_phone(one, host, port, timeout=60)
            next_ms = latencies(one, CHUNK)

            mail_ms, body_ms = [], []
            for i in range(args.mail_calls):
                phone = Phone([Press("GET DATA agent-pass", digits=PIN),
                               Press("STREAM FILE vm-onefor", key="2"),
                               Press(r"STREAM FILE vm-prev", hangup=True)],
                              uniqueid=f"mail.{i}")
                await run_phone(phone, host, port, timeout=60)
                mail_ms += latencies(phone, CHUNK)
                # the body's first sentence: the first chunk of the second speech run
                runs = [(t, line) for t, line in phone.sent_at
                        if re.search(r"/call-\S*/[0-9a-f]{12}-0001 ", line)]
                pressed = phone.pressed_at[0][0]
                after = [t for t, _line in runs if t > pressed]
                if len(after) >= 2:
                    body_ms.append((after[-1] - pressed) * 1000)

            together = asyncio.Barrier(args.calls)
            calls = [TogetherPhone(next_presses(args.presses_each, args.think), together,
                                   offset=args.think * i / args.calls, uniqueid=f"many.{i}")
                     for i in range(args.calls)]
            t = time.perf_counter()
            await asyncio.gather(*(run_phone(p, host, port, timeout=120) for p in calls))
            wall = time.perf_counter() - t
            menu_cpu = time.process_time() - MENU_PHASE.get("cpu", time.process_time())
            many_ms = [x for p in calls for x in latencies(p, CHUNK)]
            open_one = [x for x in (login_ms(one),) if x is not None]
            open_many = [x for x in map(login_ms, calls) if x is not None]
        finally:
            await server.stop(2.0)

        def row(name: str, values: list[float]) -> None:
            print(f"{name:58s} n={len(values):4d}  p50 {pct(values, 50):7.1f} ms  "
                  f"p95 {pct(values, 95):7.1f} ms  p99 {pct(values, 99):7.1f} ms")

        print(f"\nmailbox: {args.voice} voicemails + {args.mail} unread mails, real Dovecot; "
              f"CPU {os.sched_getaffinity(0)}")
        row("floor: key -> STREAM FILE of a file on disk", floor_ms)
        row("key 6 -> first audio command of the next voicemail", next_ms)
        row("key 2 -> first audio for a 10 KB HTML mail (its count)", mail_ms)
        row("key 2 -> first sentence of that mail's body", body_ms)
        row(f"{args.calls} calls in the menu (listening {args.think:g} s): key -> next "
            "voicemail's first audio", many_ms)
        row("PIN -> first count said (IMAP login + both lists), 1 call", open_one)
        row(f"PIN -> first count said, {args.calls} calls at once", open_many)
        failed = [p.uniqueid for p in [one, *calls]
                  if any("/phrases/unavailable-" in c for c in p.commands)]
        print(f"calls that heard 'mailbox unreachable': {len(failed)} of {len(calls) + 1}")
        if failed:
            print("Dovecot log tail:\n" + made[0].log_text()[-3000:])
        # Same-run ratios: what the shared machine does to all rows cancels out of them.
        print(f"ratios in this run: 1 call key 6 p95 / floor p95 = "
              f"{pct(next_ms, 95) / max(pct(floor_ms, 95), 0.01):.1f}; "
              f"{args.calls} calls p99 / 1 call p99 = "
              f"{pct(many_ms, 99) / max(pct(next_ms, 99), 0.01):.1f}; "
              f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        presses = len(many_ms)
        print(f"CPU of this process (server, speech, callers) once all were in the menu: "
              f"{menu_cpu:.1f} s for {presses} key presses = "
              f"{menu_cpu / max(presses, 1) * 1000:.0f} ms per press: one core takes at most "
              f"{presses / max(menu_cpu, 1e-9):.0f} presses/s")
        print(f"{args.calls} calls x {args.presses_each} presses in {wall:.1f} s; "
              f"targets: p95 < 100 ms (next), p95 < 150 ms (mail), p99 < 300 ms (50 calls)")
    finally:
        for d in made:
            d.stop()
            shutil.rmtree(d.root, ignore_errors=True)
        cleanup(boxes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voice", type=int, default=1000)
    parser.add_argument("--mail", type=int, default=1000)
    parser.add_argument("--presses", type=int, default=100)
    parser.add_argument("--mail-calls", type=int, default=20)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--presses-each", type=int, default=10)
    parser.add_argument("--cpu", type=int, default=0)
    parser.add_argument("--think", type=float, default=0.0,
                        help="seconds each of the many callers listens to a voicemail "
                             "before pressing 6 (0: at once, the worst case)")
    args = parser.parse_args()
    os.sched_setaffinity(0, {args.cpu})
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
