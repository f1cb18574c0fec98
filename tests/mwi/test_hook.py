"""The hooks that recount a user's lamp: a deposit delivered, and mailcall's own mailbox changes.

Real Dovecot, real deposits; the mailbox-changed test also runs a real Asterisk and
reads what it holds (``MWIGet``), so "published" means what the phones are told.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time

from mailcall.mwi.counts import Counts
from mailcall.mwi.service import MwiService
from mailcall.plugins.deposit import notify_delivered
from tests.mwi.live import MAILBOX, start_asterisk
from tests.support.asterisk import free_udp_port


async def test_hook_mailcall_deposit_delivered(mail, tmp_path):
    # AMI is down on purpose (nothing on port 1): counting must not wait for Asterisk.
    service = MwiService(mail.runtime, mail.settings(trigger_socket=None))
    await service.start()
    try:
        await service.reconciled()
        assert service.counts("alice") is None  # no folder yet: unknown, not 0/0
        loop = asyncio.get_running_loop()
        deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice", "call-1")
        notify_delivered(mail.runtime, deposit, plan, mid)  # calls the hook, as the worker does
        deadline = time.monotonic() + 5
        while service.counts("alice") != Counts(1, 0):
            assert time.monotonic() < deadline, service.counts("alice")
            await asyncio.sleep(0.02)
        assert service.ledger.due == 1  # kept for Asterisk, published when AMI comes up
    finally:
        await service.stop(1.0)
    # Without a running lamp (no mwi.toml, or stopped) nobody answers: nothing is
    # recounted, nothing raises, and nobody claims to know the counts.
    assert not mail.runtime.pm.is_registered(service._hooks)
    counted = service.refresher.counted
    notify_delivered(mail.runtime, deposit, plan, mid)
    assert service.refresher.counted == counted
    assert mail.runtime.pm.hook.mailcall_voice_counts(runtime=mail.runtime, user="alice") is None


async def off_loop(fn, *args):
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


async def held(service) -> tuple[str, str]:
    """What Asterisk holds for alice's mailbox (MWIGet)."""
    reply = await service.ami.action("MWIGet", {"Mailbox": MAILBOX})
    rows = [(m.get("NewMessages"), m.get("OldMessages")) for m in reply.events
            if m.get("Event") == "MWIGet"]
    assert len(rows) == 1, reply
    return rows[0]


async def until_held(service, want: tuple[str, str], timeout: float) -> float:
    t0 = time.monotonic()
    while (got := await held(service)) != want:
        assert time.monotonic() - t0 < timeout, f"Asterisk holds {got}, not {want}"
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def test_hook_mailcall_mailbox_changed(mail, tmp_path):
    """The phone menu marks a voicemail heard (\\Seen over IMAP) and calls the hook: the lamp
    Asterisk holds goes from 1/0 to 0/1 at once. No IMAPSieve trigger socket and no periodic
    reconcile here, so nothing but the hook can cause the recount."""
    ast = start_asterisk(free_udp_port())
    secret = tmp_path / "ami.secret"
    secret.write_text(ast.ami_secret + "\n")
    secret.chmod(0o600)
    settings = mail.settings(ami_port=ast.ami_port, ami_secret_file=str(secret),
                             trigger_socket=None)
    service = MwiService(mail.runtime, settings)
    hook = mail.runtime.pm.hook.mailcall_mailbox_changed
    await service.start()
    try:
        assert await service.ami.wait_connected(10)
        await off_loop(mail.deposit, "alice", "call-1")
        service.reconcile()
        await service.reconciled()
        await until_held(service, ("1", "0"), 5)

        # The phone menu's IMAP session (the user's own here) sets \Seen.
        client = await off_loop(mail.imap, "alice")
        await off_loop(client.select, "Voicemail")
        await off_loop(client.store, "1", "+FLAGS", "\\Seen")
        await off_loop(client.logout)
        await asyncio.sleep(0.5)
        assert await held(service) == ("1", "0")  # nothing else recounts: the hook must

        # Another folder changed, or another user: alice's lamp is not recounted.
        hook(runtime=mail.runtime, user="alice", folder="INBOX", reason="filed")
        hook(runtime=mail.runtime, user="nobody", folder="Voicemail", reason="heard")
        await asyncio.sleep(0.5)
        assert await held(service) == ("1", "0")
        assert service.counts("alice") == Counts(1, 0)

        # The voice folder: published at once, from the loop or from a worker thread (how
        # fast is bench/mwi's job: a timed assertion here would fail on a loaded machine).
        hook(runtime=mail.runtime, user="alice", folder="Voicemail", reason="heard")
        await until_held(service, ("0", "1"), 10)
        assert service.counts("alice") == Counts(0, 1)
        assert service.ledger.published(MAILBOX) == Counts(0, 1)

        client = await off_loop(mail.imap, "alice")
        await off_loop(client.select, "Voicemail")
        await off_loop(client.store, "1", "+FLAGS", "\\Deleted")
        await off_loop(client.expunge)
        await off_loop(client.logout)
        caller = threading.Thread(target=hook, kwargs={
            "runtime": mail.runtime, "user": "alice", "folder": "Voicemail",
            "reason": "deleted"})
        caller.start()
        caller.join(5)
        await until_held(service, ("0", "0"), 10)
    finally:
        await service.stop(1.0)
        ast.stop()
        shutil.rmtree(ast.root, ignore_errors=True)
    # Without a running lamp the hook does nothing and raises nothing.
    assert not mail.runtime.pm.is_registered(service._hooks)
    hook(runtime=mail.runtime, user="alice", folder="Voicemail", reason="heard")


async def test_the_periodic_reconcile_restores_a_lamp_lost_on_asterisks_side(mail, tmp_path):
    """Nothing changed in the mailbox, but Asterisk forgot the lamp (here an MWIDelete by
    hand): the periodic safety net sends it again (it used to recount only, and a lamp
    unchanged in IMAP stayed lost until the next change or AMI reconnect)."""
    ast = start_asterisk(free_udp_port())
    secret = tmp_path / "ami.secret"
    secret.write_text(ast.ami_secret + "\n")
    secret.chmod(0o600)
    settings = mail.settings(ami_port=ast.ami_port, ami_secret_file=str(secret),
                             trigger_socket=None, reconcile_interval=1.0)
    service = MwiService(mail.runtime, settings)
    await service.start()
    try:
        assert await service.ami.wait_connected(10)
        await off_loop(mail.deposit, "alice", "call-1")
        service.reconcile()
        await service.reconciled()
        await until_held(service, ("1", "0"), 5)
        reply = await service.ami.action("MWIDelete", {"Mailbox": MAILBOX})
        assert reply.ok, reply
        lost = await service.ami.action("MWIGet", {"Mailbox": MAILBOX})
        assert not [m for m in lost.events if m.get("Event") == "MWIGet"
                    and m.get("NewMessages") == "1"], lost  # Asterisk really forgot it
        deadline = time.monotonic() + 5
        while True:
            again = await service.ami.action("MWIGet", {"Mailbox": MAILBOX})
            rows = [(m.get("NewMessages"), m.get("OldMessages")) for m in again.events
                    if m.get("Event") == "MWIGet"]
            if rows == [("1", "0")]:
                break
            assert time.monotonic() < deadline, f"still lost on Asterisk's side: {again}"
            await asyncio.sleep(0.1)
        assert service.counts("alice") == Counts(1, 0)
    finally:
        await service.stop(1.0)
        ast.stop()
        shutil.rmtree(ast.root, ignore_errors=True)


async def test_a_wrong_master_password_is_one_warning_not_one_per_user(mail, caplog):
    """Every user's count is refused for the same reason: one line says it, and one summary
    counts the users (it used to be a WARNING per user: 10,000 lines for one problem)."""
    import logging

    (mail.work / "imap-master.secret").write_text("not-the-password\n")
    from dataclasses import replace

    settings = mail.settings(trigger_socket=None)
    # Dovecot answers each refusal after its 2 s penalty: give the logins time to hear it.
    settings = replace(settings, imap=replace(settings.imap, timeout=30.0))
    service = MwiService(mail.runtime, settings)
    caplog.set_level(logging.WARNING, logger="mailcall.mwi")
    await service.start()
    try:
        await service.reconciled()
    finally:
        await service.stop(1.0)
    watched = len(service._watched)
    assert watched > 2
    lines = [r.getMessage() for r in caplog.records if r.name == "mailcall.mwi"]
    refused = [m for m in lines if "master login" in m]
    assert len(refused) == 2, lines  # the first refusal, then the count
    assert f"refused the master login for {watched} users" in refused[1]
    assert "not-the-password" not in caplog.text
    assert all(service.counts(u) is None for u in service._watched)  # nothing made up


async def test_hook_mailcall_voice_counts(mail):
    """The counts a notification or the phone menu's greeting tells: right after a deposit
    they already include it (the hook waits for the recount the deposit asked for), and
    when the mailbox cannot be read they are None, never the last number seen."""
    from mailcall.core.contracts import VoiceCounts
    from mailcall.core.host.runtime import Runtime

    hook = mail.runtime.pm.hook.mailcall_voice_counts
    service = MwiService(mail.runtime, mail.settings(trigger_socket=None))
    await service.start()
    try:
        await service.reconciled()
        loop = asyncio.get_running_loop()
        for n in (1, 2):
            deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice",
                                                            f"call-{n}")
            notify_delivered(mail.runtime, deposit, plan, mid)  # pokes, as the worker does
            got = await hook(runtime=mail.runtime, user="alice")
            assert got == VoiceCounts(n, 0)
        assert hook(runtime=mail.runtime, user="nobody") is None  # not watched: no answer
        other = Runtime(mail.runtime.policy, mail.runtime.pm)
        assert hook(runtime=other, user="alice") is None  # another runtime's lamp is not us

        mail.dovecot.stop()
        service.poke("alice")
        assert await hook(runtime=mail.runtime, user="alice") is None  # unreadable: no number
        assert service.counts("alice") == VoiceCounts(2, 0)  # the lamp keeps its last state
    finally:
        await service.stop(1.0)


async def test_a_voicemail_notification_tells_the_count_the_lamp_read(mail, tmp_path):
    """End to end on the real path: a real deposit in a real Dovecot, the deposit plugin's
    notify_delivered, the running lamp, the durable dispatcher: the text sent to the
    mobile ends with the count the lamp read, including the voicemail just delivered."""
    from dataclasses import replace

    from mailcall.core.decisions.plans import Notify
    from mailcall.notifications import Dispatcher

    class Phone:
        medium = "sms"

        def __init__(self) -> None:
            self.texts: list[str] = []

        async def send(self, notification, subject, text) -> None:
            self.texts.append(text)

    phone = Phone()
    dispatcher = Dispatcher(mail.runtime, [phone], path=tmp_path / "queue.sqlite")
    mail.runtime.notifier = dispatcher
    service = MwiService(mail.runtime, mail.settings(trigger_socket=None))
    await dispatcher.start()
    await service.start()
    try:
        await service.reconciled()
        loop = asyncio.get_running_loop()
        to_mobile = (Notify(user="alice", medium="sms", address="+33600000001", why="test"),)
        for n in (1, 2):
            deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice",
                                                            f"call-{n}")
            stored = notify_delivered(mail.runtime, deposit, replace(plan, notify=to_mobile),
                                      mid)
            assert await stored
            deadline = time.monotonic() + 10
            while len(phone.texts) < n:
                assert time.monotonic() < deadline, phone.texts
                await asyncio.sleep(0.02)
        assert phone.texts[0].splitlines()[-1] in ("1 new voice message",
                                                   "1 nouveau message vocal"), phone.texts
        assert phone.texts[1].splitlines()[-1] in ("2 new voice messages",
                                                   "2 nouveaux messages vocaux"), phone.texts
    finally:
        await service.stop(1.0)
        await dispatcher.stop(1.0)


async def test_a_plugin_failing_on_a_delivered_deposit_never_costs_the_notification(
        mail, caplog):
    """The hook was called plainly before the notice was handed over: a plugin raising there
    skipped the mobile's notification, and the promise stayed unkept at every restart."""
    from mailcall.core.hookspecs import hookimpl

    class Broken:
        @hookimpl
        def mailcall_deposit_delivered(self, runtime, deposit, plan, message_id):
            raise RuntimeError("lamp plugin broken")

    class Recorder:
        def __init__(self):
            self.notices = []

        def submit(self, notice):
            self.notices.append(notice)
            done = asyncio.get_running_loop().create_future()
            done.set_result(True)
            return done

    loop = asyncio.get_running_loop()
    deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice", "call-2")
    # This test's policy does not notify alice: her plan as if her profile did.
    from dataclasses import replace

    from mailcall.core.decisions.plans import Notify
    plan = replace(plan, notify=(Notify("alice", "sms", "+33612345678", "new voicemail"),))
    mail.runtime.pm.register(Broken(), name="broken-lamp")
    recorder, before = Recorder(), mail.runtime.notifier
    mail.runtime.notifier = recorder
    try:
        accepted = notify_delivered(mail.runtime, deposit, plan, mid)
        assert accepted is not None and await accepted is True
    finally:
        mail.runtime.notifier = before
        mail.runtime.pm.unregister(name="broken-lamp")
    assert [n.message_id for n in recorder.notices] == [mid]
    assert "plugin broken-lamp failed in mailcall_deposit_delivered" in caplog.text
