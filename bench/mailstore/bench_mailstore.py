"""Mailbox by phone, mail side: what a call waits for, on a real Dovecot with 2,000 messages.

Figures (p50/p95 over --rounds, milliseconds):
  open     connect + master login + CAPABILITY, then logout (one per call);
  voice    voice_messages(): the sealed deposits of the voice folder, with caller and duration;
  unread   unread_mail(): the count and the newest max_listed summaries of the INBOX;
  audio    next voicemail's audio (structure known from the list: one UID FETCH);
  readable readable() of a 10 KB HTML mail (fetch + HTML to text + trimming), and the same
           conversion alone without IMAP (CPU);
and, with --compare-html, the HTML libraries considered, on the same hostile documents.

The mailbox: 50 voice messages deposited by mailcall's spool worker (Opus), 1,950 mails
over LMTP (plain, HTML, half of them unseen).

Run as root: .venv/bin/python bench/mailstore/bench_mailstore.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import smtplib
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.support

from mailcall.mailstore.readable import body_text, readable
from mailcall.mailstore.structure import Part
from tests.mailstore.support import ALICE, html, plain, start_phone_mail, voice
from tests.support.dovecot import DovecotFactory

VOICE = 50
MAILS = 1950


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def line(name: str, values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"{name:<22} p50 {pct(ms, 50):7.2f} ms   p95 {pct(ms, 95):7.2f} ms   "
            f"max {max(ms):7.2f} ms   (n={len(ms)})")


def html_10k() -> str:
    paragraphs = "".join(
        f"<p style='font-family:Arial;color:#333'>Paragraphe {i} : le <b>rapport</b> "
        f"trimestriel est <a href='https://intranet.example.test/docs/{i}'>en ligne</a>.</p>"
        for i in range(70))
    return (f"<html><head><style>p{{margin:0}}</style></head><body>{paragraphs}"
            f"<div class='gmail_quote'>Le 27 nov., Alice a écrit : ancien texte</div>"
            f"</body></html>")


async def fill(m) -> None:
    await m.deposit(*(voice(f"bench.{i}", name=f"Caller {i}", number=f"+3361000{i:04d}")
                      for i in range(VOICE)))
    doc = html_10k()
    with smtplib.LMTP("127.0.0.1", m.dovecot.lmtp_port) as lmtp:
        for i in range(MAILS):
            msg = (html(f"Rapport {i}", doc) if i % 3 == 0 else
                   plain(f"Message {i}", f"Bonjour Alice,\nvoici le message numéro {i}.\n"))
            lmtp.sendmail("sender@outside.test", [ALICE], bytes(msg))
    conn = m.user_imap()
    conn.select('"INBOX"')
    conn.uid("STORE", f"1:{MAILS // 2}", "+FLAGS.SILENT", "(\\Seen)")
    conn.logout()


async def measure(m, rounds: int) -> None:
    store = m.store(timeout=5.0, max_connections=8)
    opens: list[float] = []
    for _ in range(rounds):
        start = time.perf_counter()
        async with store.session(ALICE):
            pass
        opens.append(time.perf_counter() - start)
    print(line("open + logout", opens))

    lists, unread_lists, audios, texts = [], [], [], []
    async with store.session(ALICE) as box:
        for _ in range(rounds):
            start = time.perf_counter()
            voices = await box.voice_messages()
            lists.append(time.perf_counter() - start)
        assert len(voices) == VOICE, len(voices)
        for _ in range(rounds):
            start = time.perf_counter()
            unread = await box.unread_mail()
            unread_lists.append(time.perf_counter() - start)
        for i in range(rounds):
            start = time.perf_counter()
            _mime, data = await box.audio(voices[i % len(voices)])
            audios.append(time.perf_counter() - start)
        html_mail = next(s for s in unread.messages if s.subject.startswith("Rapport"))
        for _ in range(rounds):
            start = time.perf_counter()
            out = await box.readable(html_mail)
            texts.append(time.perf_counter() - start)
    print(line(f"voice_messages ({VOICE})", lists))
    print(line(f"unread_mail ({unread.count})", unread_lists))
    print(line(f"audio ({len(data)} B)", audios))
    print(line("readable 10 KB HTML", texts))
    raw = html_10k().encode()
    part = Part("1", "text/html", {"charset": "utf-8"}, "8bit", len(raw), "", "", None)
    cpu = []
    for _ in range(rounds):
        start = time.perf_counter()
        text, cut = body_text(raw, part, cut=False)
        readable(html_mail, text=text, cut=cut, attachments=[])
        cpu.append(time.perf_counter() - start)
    print(line("  of which CPU only", cpu))
    print(f"  ({len(raw)} B of HTML -> {len(out.text)} characters read, language "
          f"{out.language})")


def compare_html() -> None:
    rows = "\n".join(f"<tr><td>cell {i} <b>b</b> &amp; <a href='x{i}'>l</a></td></tr>"
                     for i in range(10_000))
    docs = {"10,000-line table": f"<table>{rows}</table>",
            "20,000 nested div": "<div>" * 20_000 + "x" + "</div>" * 20_000,
            "10 KB mail": html_10k()}
    candidates = {}
    import lxml.html
    candidates["lxml (chosen)"] = lambda d: lxml.html.document_fromstring(d).text_content()
    try:
        from selectolax.lexbor import LexborHTMLParser
        candidates["selectolax/lexbor"] = lambda d: LexborHTMLParser(d).body.text()
    except ImportError:
        pass
    try:
        from bs4 import BeautifulSoup
        candidates["beautifulsoup4"] = lambda d: BeautifulSoup(d, "html.parser").get_text()
    except ImportError:
        pass
    try:
        import html2text
        candidates["html2text"] = html2text.html2text
    except ImportError:
        pass
    for name, fn in candidates.items():
        cells = []
        for doc in docs.values():
            start = time.perf_counter()
            fn(doc)
            cells.append(f"{(time.perf_counter() - start) * 1000:9.1f} ms")
        print(f"{name:<20}" + "".join(f"{c:>16}" for c in cells))
    print(" " * 20 + "".join(f"{k:>16}" for k in docs))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--compare-html", action="store_true")
    args = parser.parse_args()
    with DovecotFactory(prefix="mailcall-bench-dovecot-") as dovecots:
        m = start_phone_mail(dovecots)
        try:
            t = time.perf_counter()
            asyncio.run(fill(m))
            print(f"mailbox filled in {time.perf_counter() - t:.1f} s: {VOICE} voice deposits, "
                  f"{MAILS} mails ({MAILS // 2} unseen)")
            asyncio.run(measure(m, args.rounds))
            print("python", sys.version.split()[0], "cpus", os.cpu_count(),
                  "load", " ".join(f"{x:.2f}" for x in os.getloadavg()))
            if args.compare_html:
                compare_html()
        finally:
            shutil.rmtree(m.work, ignore_errors=True)


if __name__ == "__main__":
    main()
