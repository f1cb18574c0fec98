"""A real Asterisk with a sipp phone whose endpoint has ``mailboxes=alice@mailcall``.

Built on the shared harness (tests/support/asterisk.py, tests/support/sipp.py):
the phone is a sipp UAS that answers NOTIFY by itself (``-aa``) and keeps every
message it received; :class:`Lamp` reads the message-summary bodies (RFC 3842)
it was sent, in order.
"""

from __future__ import annotations

import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support import SHARED
from tests.support.asterisk import Asterisk, Endpoint, find_prefix, free_udp_port
from tests.support.sipp import phone_scenario, start_sipp

MAILBOX = "alice@mailcall"


@dataclass(frozen=True)
class Summary:
    waiting: str
    voice: str | None
    at: float


def summaries(messages: list[str]) -> list[tuple[str, str | None]]:
    out = []
    for m in messages:
        if not m.startswith("NOTIFY "):
            continue
        waiting = re.search(r"^Messages-Waiting:\s*(\S+)", m, re.M | re.I)
        voice = re.search(r"^Voice-Message:\s*(\S+)", m, re.M | re.I)
        if waiting:
            out.append((waiting[1].lower(), voice[1] if voice else None))
    return out


class Lamp:
    """The phone's view: every message-summary NOTIFY it received, with when it was seen."""

    def __init__(self, sipp) -> None:
        self.sipp = sipp
        self.seen: list[Summary] = []

    def poll(self) -> list[Summary]:
        got = summaries(self.sipp.received())
        now = time.monotonic()
        for waiting, voice in got[len(self.seen):]:
            self.seen.append(Summary(waiting, voice, now))
        return self.seen

    def wait_for(self, waiting: str, voice: str, since: int, timeout: float = 5.0) -> Summary:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for s in self.poll()[since:]:
                if (s.waiting, s.voice) == (waiting, voice):
                    return s
            time.sleep(0.01)
        raise AssertionError(f"no NOTIFY {waiting} {voice} within {timeout}s; phone got "
                             f"{[(s.waiting, s.voice) for s in self.poll()]}")


def start_asterisk(phone_port: int) -> Asterisk:
    root = Path(tempfile.mkdtemp(prefix="mailcall-mwi-ast-"))
    ast = Asterisk(prefix=find_prefix(SHARED), root=root,
                   templates=SHARED / "asterisk" / "test-instance",
                   endpoints=[Endpoint(name="201", context="default", port=phone_port,
                                       mailboxes=MAILBOX)])
    ast.start("[default]\n")
    return ast


def start_phone(workdir: Path) -> tuple[object, int]:
    port = free_udp_port()
    sipp = start_sipp("phone201", phone_scenario("answer"), workdir, local_ip="127.0.0.1",
                      port=port, media_port=free_udp_port(), calls=None, timeout_s=None)
    return sipp, port
