"""Test harness: a real Dovecot wired to mailcall's Sieve scripts and bridge.

mailcall's services run in-process on an event loop in a helper thread (so the
test can set ``runtime.clock``), beside a tiny capture SMTP server that
receives both Dovecot's vacation replies (``submission_host``) and the SMS
gateway mails (``[channels] relay``).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.host.serve import start_services, stop_services
from mailcall.core.policy.load import compile_text
from mailcall.deposit.seal import deposit_key, deposit_token
from mailcall.plugins import channels as channels_plugin
from mailcall.plugins import sieve as sieve_plugin
from mailcall.sieve.commands import install
from mailcall.sieve.generate import GLOBAL_NAME, USERS_DIR
from tests.support.dovecot import MAIL_UID
from tests.support.policies import example_policy_text
from tests.support.waiting import wait_until

PARIS = ZoneInfo("Europe/Paris")
USERS = ["alice@stockinox.example", "carole@stockinox.example", "emma@stockinox.example"]

NO_MAIL_NOTICES = {"profiles": {"sales": {"features": {"notify": {"mail": False}}}}}
"""A change for policy_text: nobody is told of mail (voicemail notices stay)."""
ABSENCE_MESSAGE = 'Je suis en congé "au soleil" \\ loin.'
"""emma's auto-reply: quotes and a backslash, which Sieve must receive quoted."""

OFFICE_HOURS = datetime(2026, 12, 8, 10, 0, tzinfo=PARIS)  # a Tuesday
EVENING = datetime(2026, 12, 8, 20, 30, tzinfo=PARIS)

ALICE = "alice@stockinox.example"
ALICE_ENV = {"USER": ALICE, "SENDER": "bob@example.net", "RECIPIENT": ALICE}
"""Dovecot's environment for a mail to alice, as the bridge receives it."""
DEPOSIT_ID = "<voice.1764260525.11.0123456789abcdef0123456789abcdef@stockinox.example>"


def sealed(spool: Path, *, msgid: str = DEPOSIT_ID, recipient: str = ALICE,
           context: str = "voice-message", token: str | None = None) -> bytes:
    """The bridge input of the generated script for a deposit sealed with `spool`'s key."""
    if token is None:
        token = deposit_token(deposit_key(spool), msgid, recipient, context)
    return (f"message-id={quote(msgid)}\ncontext={quote(context)}\n"
            f"token={quote(token)}\n").encode()


def policy_text(*, socket: Path, smtp_port: int, file_path: Path, rate: int = 20,
                now: datetime | None = None, spool: Path | None = None,
                lmtp: str = "unix:/run/dovecot/mailcall-lmtp", changes: dict | None = None,
                absence_message: str = ABSENCE_MESSAGE) -> str:
    """The example policy as these tests run it; emma's absence covers the real "now"
    (Dovecot's own clock). The spool (where the deposit key lives) defaults to a folder
    beside `file_path`. Deposits go into the mailboxes by LMTP (`lmtp`), mail to the
    outside through the relay (`smtp_port`), as docs/dovecot.md sets them up. `changes`
    are merged last (tests/support/policies.py)."""
    now = (now or datetime.now(PARIS)).astimezone(PARIS).replace(microsecond=0, tzinfo=None)
    return example_policy_text({
        "server": {"sieve_socket": str(socket), "spool_dir": str(spool or file_path.parent
                                                                 / "spool")},
        "delivery": {"method": "lmtp", "address": lmtp, "sender": "mailcall@stockinox.example"},
        "channels": {"relay": f"127.0.0.1:{smtp_port}", "file_path": str(file_path),
                     "rate_limit_per_hour": rate},
        "absences": [{"user": "emma", "from": now - timedelta(days=1),
                      "until": (now + timedelta(days=10)).replace(hour=0, minute=0, second=0),
                      "backup": "bernard", "message": absence_message}],
    }, changes or {})


class LoopThread:
    """An asyncio loop in a helper thread, so synchronous tests can drive async services."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@dataclass
class Captured:
    mail_from: str
    rcpt_to: list[str]
    data: bytes


class CaptureSMTP:
    """Just enough ESMTP to accept mail from Dovecot and smtplib, and keep it."""

    def __init__(self) -> None:
        self.messages: list[Captured] = []
        self.port = 0
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 capture ESMTP\r\n")
        mail_from, rcpts = "", []
        try:
            while line := await reader.readline():
                cmd = line.decode("utf-8", "replace").strip()
                up = cmd.upper()
                if up.startswith("EHLO"):
                    writer.write(b"250-capture\r\n250-8BITMIME\r\n250 SIZE 60000000\r\n")
                elif up.startswith("HELO") or up.startswith("NOOP"):
                    writer.write(b"250 ok\r\n")
                elif up.startswith("MAIL FROM:"):
                    arg = cmd[10:].strip()
                    mail_from, rcpts = (arg.split()[0].strip("<>") if arg else ""), []
                    writer.write(b"250 ok\r\n")
                elif up.startswith("RCPT TO:"):
                    rcpts.append(cmd[8:].split()[0].strip("<>"))
                    writer.write(b"250 ok\r\n")
                elif up == "DATA":
                    writer.write(b"354 go\r\n")
                    await writer.drain()
                    lines = []
                    while (body := await reader.readline()) not in (b".\r\n", b".\n", b""):
                        lines.append(body[1:] if body.startswith(b".") else body)
                    self.messages.append(Captured(mail_from, rcpts, b"".join(lines)))
                    writer.write(b"250 queued\r\n")
                elif up == "RSET":
                    mail_from, rcpts = "", []
                    writer.write(b"250 ok\r\n")
                elif up == "QUIT":
                    writer.write(b"221 bye\r\n")
                    await writer.drain()
                    break
                else:
                    writer.write(b"502 unknown\r\n")
                await writer.drain()
        finally:
            writer.close()

    def to(self, address: str) -> list[Captured]:
        return [m for m in self.messages if address in m.rcpt_to]


@dataclass
class Rig:
    dovecot: Any
    loop: LoopThread
    smtp: CaptureSMTP
    runtime: Runtime
    scripts: Path
    bin_dir: Path
    socket: Path
    file_path: Path
    services: list[Any] = field(default_factory=list)

    def start_mailcall(self) -> None:
        self.services = self.loop.run(start_services(self.runtime))

    def stop_mailcall(self) -> None:
        self.loop.run(stop_services(self.services, grace=2.0))
        self.services = []

    def set_clock(self, moment: datetime) -> None:
        self.runtime.clock = lambda: moment

    def records(self) -> list[dict]:
        import json

        if not self.file_path.exists():
            return []
        return [json.loads(line) for line in self.file_path.read_text().splitlines() if line]

    def deliver(self, rcpt: str, message: bytes, sender: str = "bob@example.net") -> dict:
        return self.dovecot.lmtp_send(sender, [rcpt], message)

    def bridge(self) -> Any:
        return next(s for s in self.services if s.name == "sieve-bridge")

    def drain(self) -> None:
        """Wait until every queued notification has been handled."""
        self.loop.run(self.bridge().notifier.drain())


wait_for = wait_until


def dovecot_plugin(scripts: Path, bin_dir: Path | None, socket_dir: str | None = "sieve-execute",
                   before: str = GLOBAL_NAME) -> dict[str, str]:
    plugin = {
        "sieve_before": str(scripts / before),
        "sieve_before2": f"{scripts / USERS_DIR}/%u.sieve",
        "sieve_plugins": "sieve_extprograms",
        "sieve_global_extensions": "+vnd.dovecot.execute",
        "sieve_execute_exec_timeout": "3s",
    }
    if socket_dir:
        plugin["sieve_execute_socket_dir"] = socket_dir
    if bin_dir:
        plugin["sieve_execute_bin_dir"] = str(bin_dir)
    return plugin


def make_socket_dir(base_dir: Path) -> Path:
    """What the install notes tell the admin: root-owned, group of the mail user, 0750."""
    path = base_dir / "sieve-execute"
    path.mkdir(exist_ok=True)
    os.chown(path, 0, MAIL_UID)
    path.chmod(0o750)
    return path


def build_rig(dovecot_factory, *, rate: int = 20, with_bin: bool = True,
              text: Callable[..., str] = policy_text) -> Rig:
    """Dovecot with mailcall's installed scripts, and mailcall's runtime (not started).
    `text` writes the policy, called with :func:`policy_text`'s keywords."""
    loop = LoopThread()
    smtp = CaptureSMTP()
    loop.run(smtp.start())
    work = Path(tempfile.mkdtemp(prefix="mailcall-sieve-"))
    work.chmod(0o755)
    scripts, bin_dir = work / "sieve", work / "bin"
    dovecot = dovecot_factory(
        plugin=dovecot_plugin(scripts, bin_dir if with_bin else None),
        users=USERS,
        extra=f"submission_host = 127.0.0.1:{smtp.port}\n"
              "postmaster_address = postmaster@stockinox.example\n",
    )
    socket = make_socket_dir(dovecot.base_dir) / "mailcall"
    file_path = work / "notifications.jsonl"
    policy = compile_text(text(socket=socket, smtp_port=smtp.port, file_path=file_path,
                               rate=rate, lmtp=f"unix:{dovecot.lmtp_socket}"))
    install(policy, scripts, bin_dir if with_bin else None, str(socket), dovecot.conf)
    pm = make_plugin_manager(entrypoints=False)
    pm.register(channels_plugin, name="channels")
    pm.register(sieve_plugin, name="sieve")
    runtime = Runtime(policy, pm)
    runtime.clock = lambda: OFFICE_HOURS
    return Rig(dovecot, loop, smtp, runtime, scripts, bin_dir, socket, file_path)


def deposit(rig: Rig, kind: str = "voice", *, mailbox: str = "alice",
            call_id: str = "1795887901.31", key: bytes | None = None) -> bytes:
    """A voicemail (missed call) or fax (failure notice) exactly as mailcall's builder writes
    it, sealed with the key of the rig's spool (or `key`)."""
    from mailcall.core.decisions.deposits import FaxMessage, VoiceMessage
    from mailcall.deposit.fax_message import build_fax_message
    from mailcall.deposit.headers import serialise
    from mailcall.deposit.seal import deposit_key
    from mailcall.deposit.voice_message import build_voice_message
    from mailcall.plugins.deposit import origin_for, plan_for

    policy = rig.runtime.policy
    key = key if key is not None else deposit_key(rig.runtime.setting("spool_dir"))
    if kind == "voice":
        call = VoiceMessage(call_id=call_id, mailbox=mailbox, caller_number="+33140000299",
                            caller_name="Compta Stock Inox", at=OFFICE_HOURS, reason="busy",
                            recording=None)
        msg = build_voice_message(call, plan_for(policy, call), origin_for(policy),
                                  recording=None, encoder=None, workdir=tempfile.gettempdir(),
                                  key=key)
    else:
        call = FaxMessage(call_id=call_id, mailbox=mailbox, caller_number="+33140000299",
                          caller_name="", at=OFFICE_HOURS, status="FAILED", error="no carrier",
                          pages=None, station_id="", tiff=None)
        msg = build_fax_message(call, plan_for(policy, call), origin_for(policy), tiff=None,
                                key=key)
    return serialise(msg)


def close_rig(rig: Rig) -> None:
    with contextlib.suppress(Exception):
        if rig.services:
            rig.stop_mailcall()
    with contextlib.suppress(Exception):
        rig.loop.run(rig.smtp.stop())
    rig.loop.close()
    import shutil

    shutil.rmtree(rig.scripts.parent, ignore_errors=True)


def message(*, to: str, subject: str = "Devis inox 316L", msgid: str | None = None,
            sender: str | None = "Bob Client <bob@example.net>", extra: str = "",
            body: str = "Bonjour, pouvez-vous me rappeler ?\n") -> bytes:
    import uuid

    headers = []
    if sender is not None:
        headers.append(f"From: {sender}")
    headers += [f"To: {to}", f"Subject: {subject}",
                f"Message-ID: {msgid or f'<{uuid.uuid4().hex}@example.net>'}",
                "Date: Tue, 08 Dec 2026 10:00:00 +0100", "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8"]
    if extra:
        headers.append(extra.rstrip("\r\n"))
    return ("\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode()
