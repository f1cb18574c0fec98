"""Notification test helpers: a real SMTP relay (aiosmtpd) that answers what a test scripts.

aiosmtpd is a complete SMTP server (the asyncio successor of the standard
library's smtpd), so the dispatcher talks to a real peer over a real socket:
EHLO, MAIL, RCPT, DATA, dot-stuffing and multi-line replies are its, not ours.
Dovecot is not used as the relay because it is exactly what the relay must
not be (its LMTP refuses outside addresses); it is the deposit side where a
test needs the mailbox.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass
from typing import Any

from aiosmtpd.controller import Controller

from mailcall.deposit.delivery import Target, deliver
from mailcall.deposit.mail_protocol import Delivered
from tests.support.waiting import async_wait_until, wait_until  # noqa: F401 - imported from here


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes


class ScriptedHandler:
    """Answers each DATA with the next line of `script` (then 250); keeps what it took.

    `hold`: the next DATA waits until :meth:`release` (a transaction caught in
    flight), then answers `hold_answer`.
    """

    def __init__(self, script: list[str] | None = None) -> None:
        self.script = list(script or [])
        self.rcpt_script: list[str] = []
        self.accepted: list[Received] = []
        self.attempts = 0
        self.hold = False
        self.hold_answer = "451 4.3.0 not committed"
        self.held = threading.Event()
        self._release = threading.Event()

    def release(self) -> None:
        self._release.set()

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_script:
            answer = self.rcpt_script.pop(0)
            if not answer.startswith("2"):
                self.attempts += 1
                return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.attempts += 1
        if self.hold:
            self.hold = False
            self.held.set()
            await asyncio.to_thread(self._release.wait, 30)
            return self.hold_answer
        answer = self.script.pop(0) if self.script else "250 2.0.0 Ok: queued as T1"
        if answer.startswith("2"):
            self.accepted.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.content))
        return answer


class ForwardingHandler:
    """A tiny MTA: what it takes it delivers into Dovecot over LMTP (as Postfix would)."""

    def __init__(self, lmtp_port: int) -> None:
        self.target = Target("lmtp", host="127.0.0.1", port=lmtp_port)
        self.accepted: list[Received] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        events = await deliver(self.target, sender=envelope.mail_from,
                               recipients=list(envelope.rcpt_tos), message=envelope.content)
        if all(isinstance(e, Delivered) for e in events):
            self.accepted.append(Received(envelope.mail_from, list(envelope.rcpt_tos),
                                          envelope.content))
            return "250 2.0.0 Ok: forwarded"
        return f"451 4.3.0 {events[0]}"


class Relay:
    """An aiosmtpd server on 127.0.0.1:`port`, in its own thread."""

    def __init__(self, handler: Any, port: int | None = None) -> None:
        self.handler = handler
        self.port = port or free_port()
        self._controller: Controller | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Relay:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Relay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
