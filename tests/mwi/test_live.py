"""The lamp end to end: real Dovecot, real Asterisk, a sipp phone receiving the NOTIFY.

One scenario, in the order an admin would see it: deposit -> lamp on (1/0);
\\Seen set by another IMAP client -> off (0/1); delete -> 0/0; a flood of 100
flag changes -> a handful of NOTIFYs, the last one right; Dovecot stopped ->
no NOTIFY with a wrong count; Asterisk restarted -> the lamp is restored.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time

import pytest

from mailcall.mwi.service import MwiService
from mailcall.plugins.deposit import notify_delivered
from tests.mwi.live import Lamp, start_asterisk, start_phone


@pytest.fixture
def stack(mail, tmp_path):
    phone, port = start_phone(tmp_path / "sipp")
    ast = start_asterisk(port)
    secret = tmp_path / "ami.secret"
    secret.write_text(ast.ami_secret + "\n")
    secret.chmod(0o600)
    yield mail, ast, phone, secret
    phone.stop()
    ast.stop()
    shutil.rmtree(ast.root, ignore_errors=True)


async def until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def off_loop(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def test_lamp_follows_the_mailbox(stack, caplog):
    caplog.set_level(logging.INFO, logger="mailcall")
    mail, ast, phone, secret = stack
    lamp = Lamp(phone)
    settings = mail.settings(ami_port=ast.ami_port, ami_secret_file=str(secret))
    service = MwiService(mail.runtime, settings)
    await service.start()
    try:
        assert await service.ami.wait_connected(5)
        await service.reconciled()

        # 1. A deposit by mailcall: the deposit plugin's delivered hook recounts alice.
        n = len(lamp.poll())
        deposit, plan, mid = await off_loop(mail.deposit, "alice", "call-1")
        t0 = time.monotonic()
        notify_delivered(mail.runtime, deposit, plan, mid)
        got = await off_loop(lamp.wait_for, "yes", "1/0", n)
        assert got.at - t0 < 1.0

        # 2. \Seen from another IMAP connection (the user's mail client): IMAPSieve trigger.
        client = await off_loop(mail.imap, "alice")
        await off_loop(client.select, "Voicemail")
        n = len(lamp.poll())
        t0 = time.monotonic()
        await off_loop(client.store, "1", "+FLAGS", "\\Seen")
        got = await off_loop(lamp.wait_for, "no", "0/1", n)
        assert got.at - t0 < 1.0
        assert service.triggers is not None and service.triggers.requests >= 1

        # 3. Delete (flag \Deleted, expunge): 0/0.
        n = len(lamp.poll())
        await off_loop(client.store, "1", "+FLAGS", "\\Deleted")
        await off_loop(client.expunge)
        await off_loop(lamp.wait_for, "no", "0/0", n)

        # 4. 100 flag changes within a second: a handful of updates, the last one right.
        n = len(lamp.poll())
        deposit, plan, mid = await off_loop(mail.deposit, "alice", "call-2")
        notify_delivered(mail.runtime, deposit, plan, mid)
        await off_loop(lamp.wait_for, "yes", "1/0", n)  # this deposit's NOTIFY, not step 1's
        await asyncio.sleep(0.5)
        n = len(lamp.poll())
        await off_loop(client.select, "Voicemail")

        def flood():
            for i in range(100):
                client.store("1", "+FLAGS" if i % 2 == 0 else "-FLAGS", "\\Seen")
            client.store("1", "+FLAGS", "\\Seen")  # 101st: ends read

        t0 = time.monotonic()
        await off_loop(flood)
        flood_seconds = time.monotonic() - t0
        await asyncio.sleep(1.5)
        after = lamp.poll()[n:]
        assert after, "no NOTIFY at all after the flood"
        assert (after[-1].waiting, after[-1].voice) == ("no", "0/1")
        assert len(after) <= 2 + 5 * (flood_seconds + 1), (len(after), flood_seconds)

        # 5. Dovecot stopped: the lamp keeps its last known state; no NOTIFY says otherwise.
        n = len(lamp.poll())
        await off_loop(mail.dovecot.stop)
        notify_delivered(mail.runtime, deposit, plan, mid)  # a poke that cannot be read
        service.reconcile(republish=True)  # resends what is known: 0/1, nothing else
        await service.reconciled()
        await asyncio.sleep(1.0)
        for s in lamp.poll()[n:]:
            assert (s.waiting, s.voice) == ("no", "0/1")
        unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(unreachable) == 1, [r.getMessage() for r in unreachable]
        await off_loop(mail.dovecot.start)

        # 6. Asterisk restarted: after its FullyBooted mailcall publishes the lamp again.
        client = await off_loop(mail.imap, "alice")  # the old session died with Dovecot
        await off_loop(client.select, "Voicemail")
        n = len(lamp.poll())
        await off_loop(client.store, "1", "-FLAGS", "\\Seen")
        await off_loop(lamp.wait_for, "yes", "1/0", n)
        await off_loop(client.logout)
        # Forget it in Asterisk (its astdb would otherwise restore it without us).
        assert (await service.ami.action("MWIDelete", {"Mailbox": "alice@mailcall"})).ok
        logins = service.ami.logins
        await off_loop(ast.stop)
        n = len(lamp.poll())
        await off_loop(ast.start, "[default]\n")
        await until(lambda: service.ami.logins > logins, 15)
        await off_loop(lamp.wait_for, "yes", "1/0", n, 10.0)
        reply = await service.ami.action("MWIGet", {"Mailbox": "alice@mailcall"})
        held = [m for m in reply.events if m.get("Event") == "MWIGet"]
        assert [(m.get("NewMessages"), m.get("OldMessages")) for m in held] == [("1", "0")]
    finally:
        await service.stop(1.0)
