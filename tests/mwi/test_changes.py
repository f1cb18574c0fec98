"""The lamp when the policy, the users or the peers change under it: a user who leaves,
a mailbox id that changes, two users on one lamp, a user added by a reload, an IMAP
trigger for an unknown login, AMI down while a lamp changes. Real Dovecot, real Asterisk."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import shutil
import time

import pytest

from mailcall.core.policy.load import load_policy
from mailcall.mwi.config import LampSettings
from mailcall.mwi.counts import Counts
from mailcall.mwi.service import MwiService
from mailcall.mwi.watched import watched_users
from mailcall.plugins.deposit import notify_delivered
from tests.mwi.live import start_asterisk
from tests.mwi.support import POLICY
from tests.support.asterisk import free_udp_port


@pytest.fixture
def asterisk(tmp_path):
    ast = start_asterisk(free_udp_port())
    secret = tmp_path / "ami.secret"
    secret.write_text(ast.ami_secret + "\n")
    secret.chmod(0o600)
    yield ast, secret
    ast.stop()
    shutil.rmtree(ast.root, ignore_errors=True)


async def held(service, mailbox: str) -> tuple[str, str] | None:
    reply = await service.ami.action("MWIGet", {"Mailbox": mailbox})
    rows = [(m.get("NewMessages"), m.get("OldMessages")) for m in reply.events
            if m.get("Event") == "MWIGet"]
    return rows[0] if rows else None


async def until(predicate, timeout: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, what or "condition not reached in time"
        await asyncio.sleep(0.05)


def without_user(policy, uid: str):
    users = {k: v for k, v in policy.users.items() if k != uid}
    return dataclasses.replace(policy, users=users)


async def test_a_user_who_leaves_has_their_lamp_switched_off(mail, asterisk):
    ast, secret = asterisk
    service = MwiService(mail.runtime, mail.settings(
        ami_port=ast.ami_port, ami_secret_file=str(secret), trigger_socket=None))
    await service.start()
    try:
        assert await service.ami.wait_connected(10)
        await asyncio.get_running_loop().run_in_executor(None, mail.deposit, "alice", "c1")
        service.reconcile()
        await service.reconciled()

        async def lit():
            return await held(service, "alice@mailcall") == ("1", "0")
        await until(lit, what="alice's lamp never lit")

        mail.runtime.replace_policy(without_user(mail.runtime.policy, "alice"))
        service.reconcile()
        await service.reconciled()

        async def off():
            return await held(service, "alice@mailcall") is None
        await until(off, what="alice left, her lamp is still lit in Asterisk")
        assert service.counts("alice") is None
    finally:
        await service.stop(1.0)


async def test_a_changed_mailbox_id_moves_the_lamp(mail, asterisk):
    """[lamp] mailbox changed from {id}@mailcall to {extension}@mailcall (a reload): the
    old id is deleted in Asterisk, not resent for ever by every republish."""
    ast, secret = asterisk
    settings = mail.settings(ami_port=ast.ami_port, ami_secret_file=str(secret),
                             trigger_socket=None)
    service = MwiService(mail.runtime, settings)
    await service.start()
    try:
        assert await service.ami.wait_connected(10)
        await asyncio.get_running_loop().run_in_executor(None, mail.deposit, "alice", "c1")
        service.reconcile()
        await service.reconciled()

        async def old_lit():
            return await held(service, "alice@mailcall") == ("1", "0")
        await until(old_lit)
        service.settings = dataclasses.replace(settings, lamp=dataclasses.replace(
            settings.lamp, mailbox="{extension}@mailcall"))
        service.reconcile(republish=True)
        await service.reconciled()

        async def moved():
            return (await held(service, "201@mailcall") == ("1", "0")
                    and await held(service, "alice@mailcall") is None)
        await until(moved, what="the lamp did not move to 201@mailcall")
    finally:
        await service.stop(1.0)


def test_two_users_on_one_mailbox_id_get_no_lamp_and_a_warning(mail):
    policy = load_policy(POLICY, pm=mail.runtime.pm)
    bernard = dataclasses.replace(policy.users["bernard"], extensions=("201",))
    clashing = dataclasses.replace(policy, users={**policy.users, "bernard": bernard})
    settings = mail.settings()
    settings = dataclasses.replace(settings, lamp=LampSettings(mailbox="{extension}@mailcall"))
    watched = watched_users(clashing, settings)
    assert "alice" not in watched and "bernard" not in watched  # neither gets a wrong lamp
    assert "carole" in watched


async def test_a_user_added_by_a_reload_gets_a_lamp_at_the_first_voicemail(mail):
    full = mail.runtime.policy
    mail.runtime.replace_policy(without_user(full, "alice"))
    service = MwiService(mail.runtime, mail.settings(trigger_socket=None))
    await service.start()
    try:
        await service.reconciled()
        assert not service.watches("alice")
        mail.runtime.replace_policy(full)  # the reload adds alice
        loop = asyncio.get_running_loop()
        deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice", "c1")
        notify_delivered(mail.runtime, deposit, plan, mid)
        got = await mail.runtime.pm.hook.mailcall_voice_counts(runtime=mail.runtime,
                                                               user="alice")
        assert got == Counts(1, 0)  # counted at once, not at the next periodic reconcile
    finally:
        await service.stop(1.0)


async def test_a_trigger_for_an_unknown_login_is_one_warning(mail, caplog):
    caplog.set_level(logging.WARNING, logger="mailcall.mwi")
    service = MwiService(mail.runtime, mail.settings(trigger_socket=None))
    await service.start()
    try:
        for _ in range(3):
            service.poke_login("alice")  # Dovecot names users by id, mwi.toml says email
        service.poke_login(mail.email("alice").upper())  # known: case-insensitive
    finally:
        await service.stop(1.0)
    warned = [r.getMessage() for r in caplog.records if "no watched user" in r.getMessage()]
    assert len(warned) == 1 and "[lamp] login" in warned[0], warned


async def test_a_change_while_ami_is_down_is_published_when_it_is_back(mail, asterisk):
    """Asterisk's AMI goes away, the lamp changes meanwhile, AMI comes back: the latest
    counts are sent once logged in again (nothing queued, nothing lost)."""
    ast, secret = asterisk
    service = MwiService(mail.runtime, mail.settings(
        ami_port=ast.ami_port, ami_secret_file=str(secret), trigger_socket=None))
    service.ami.backoff_min = service.ami.backoff_max = 0.3
    await service.start()
    loop = asyncio.get_running_loop()
    try:
        assert await service.ami.wait_connected(10)
        await service.reconciled()
        logins = service.ami.logins
        await loop.run_in_executor(None, ast.stop)
        for n in (1, 2):
            deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice",
                                                            f"c{n}")
            notify_delivered(mail.runtime, deposit, plan, mid)
        assert await mail.runtime.pm.hook.mailcall_voice_counts(
            runtime=mail.runtime, user="alice") == Counts(2, 0)
        assert service.ledger.published("alice@mailcall") != Counts(2, 0)
        await loop.run_in_executor(None, ast.start, "[default]\n")

        async def back():
            return (service.ami.logins > logins and service.ami.connected
                    and await held(service, "alice@mailcall") == ("2", "0"))
        await until(back, 30, "the change made while AMI was down never reached Asterisk")
    finally:
        await service.stop(1.0)


async def test_a_refused_login_after_a_good_count_keeps_the_last_lamp(mail):
    service = MwiService(mail.runtime, mail.settings(trigger_socket=None))
    await service.start()
    try:
        loop = asyncio.get_running_loop()
        deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice", "c1")
        notify_delivered(mail.runtime, deposit, plan, mid)
        hook = mail.runtime.pm.hook.mailcall_voice_counts
        assert await hook(runtime=mail.runtime, user="alice") == Counts(1, 0)
        (mail.work / "imap-master.secret").write_text("wrong\n")
        await loop.run_in_executor(None, mail.deposit, "alice", "c2")
        service.poke("alice")
        assert await hook(runtime=mail.runtime, user="alice") is None  # no number to tell
        assert service.counts("alice") == Counts(1, 0)  # the lamp keeps its last state
        assert service.ledger.due == 1  # (AMI is down here) and nothing else is queued
    finally:
        await service.stop(1.0)
