"""A voicemail's notification is promised with its delivery: a stop in between never loses it.

The delivery process reports a delivery to ``mailcall serve`` after the mail server's 250,
and only then is the notice written to the notifier's durable queue. Between the two, a
kill -9 of serve used to lose the notification for good. The delivered record now keeps
``notify_pending`` until the notifier says the notice is on disk, and serve hands such
records over again at start; the notifier drops a notice it already holds.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from mailcall.deposit.spool import Spool, spool_id
from mailcall.deposit.spool_depositor import SpoolDepositor
from tests.deposit.support import MEDIA, USERS, make_policy, policy_text, run, voice
from tests.deposit.test_delivery_process import Recorder, make_process

pytestmark = pytest.mark.dovecot


class Accepting(Recorder):
    """A notifier that answers as the real one does: a future, True once on disk."""

    def on_delivered(self, deposit, plan, mid):
        super().on_delivered(deposit, plan, mid)
        accepted = asyncio.get_running_loop().create_future()
        accepted.set_result(True)
        return accepted


class Lost(Recorder):
    """serve killed before the notifier committed: no answer ever comes."""

    def on_delivered(self, deposit, plan, mid):
        super().on_delivered(deposit, plan, mid)
        return asyncio.get_running_loop().create_future()


def notifying_policy(address: str):
    from mailcall.core.policy.load import compile_text

    text = policy_text(address).replace(
        '[users.alice]',
        '[profiles.mobile]\ndescription = "staff, told by SMS"\nextends = "staff"\n'
        '[profiles.mobile.features]\nnotify = { voicemail = true, media = ["sms"] }\n\n'
        '[users.alice]', 1).replace(
        'profile = "staff"\nextensions = [\n    "201",\n]',
        'profile = "mobile"\nextensions = ["201"]\nmobile = "+33612345678"', 1)
    assert 'profile = "mobile"' in text, "the support policy's layout changed: fix the replace"
    text += '\n[channels]\nsms_gateway = "{number}@sms.example.test"\nrelay = "127.0.0.1:2525"\n'
    return compile_text(text, name="<notify-test>")


async def wait_until(test, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not test():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def deposit_once(spool_dir, policy, call, recorder, then=None) -> None:
    """serve with its delivery process: one voicemail accepted and delivered, then
    `then()` awaited (if given) before serve stops."""
    depositor = SpoolDepositor(Spool(spool_dir))
    proc = make_process(spool_dir, policy, recorder, depositor)
    await proc.start()
    try:
        await depositor.accept(call)
        await recorder.wait_for(1)
        if then is not None:
            await then()
    finally:
        await proc.stop(5)


def test_a_notification_lost_with_serve_is_handed_over_at_next_start(dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = notifying_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    call = voice("1764260700.1", mailbox="alice", recording=str(MEDIA / "voicemail-dtmf-end.wav"))
    sid = spool_id(call)
    spool = Spool(tmp_path / "spool")

    lost = Lost()  # delivered, then serve "dies" before the notifier's commit
    run(deposit_once(tmp_path / "spool", policy, call, lost))
    assert [c for c, _, _ in lost.delivered] == [call.call_id]
    record = spool.load(sid)
    assert record.state == "delivered" and record.notify_pending

    async def again(recorder):
        proc = make_process(tmp_path / "spool", policy, recorder)
        await proc.start()
        try:
            seen = list(recorder.delivered)  # recovery runs before start() returns
            await wait_until(lambda: not spool.load(sid).notify_pending)
        finally:
            await proc.stop(5)
        return seen

    second = Accepting()
    assert [c for c, _, _ in run(again(second))] == [call.call_id]
    assert second.delivered[0][2] == record.message_id
    assert not spool.load(sid).notify_pending

    third = Accepting()

    async def quiet():
        proc = make_process(tmp_path / "spool", policy, third)
        await proc.start()
        await proc.stop(5)

    run(quiet())
    assert third.delivered == []  # the promise was kept once: nothing handed over again


def test_a_deposit_without_notification_promises_nothing(dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")  # no notify in its profile
    call = voice("1764260700.2", mailbox="alice", recording=str(MEDIA / "voicemail-dtmf-end.wav"))

    run(deposit_once(tmp_path / "spool", policy, call, Recorder()))
    record = Spool(tmp_path / "spool").load(spool_id(call))
    assert record.state == "delivered" and not record.notify_pending
    assert b"notify_pending" not in Spool(tmp_path / "spool").path(
        "delivered", record.id).read_bytes()


def test_no_notifier_to_take_it_promises_nothing_forever(dovecot_factory, tmp_path):
    """Without a notification plugin nothing will ever take the notice (serve warns once):
    the promise is dropped, or every start would hand the record over again."""
    dovecot = dovecot_factory(users=USERS)
    policy = notifying_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    call = voice("1764260700.3", mailbox="alice", recording=str(MEDIA / "voicemail-dtmf-end.wav"))
    spool = Spool(tmp_path / "spool")

    async def cleared() -> None:
        await wait_until(lambda: not spool.load(spool_id(call)).notify_pending)

    # Recorder answers None, as notify_delivered does with no notifier loaded.
    run(deposit_once(tmp_path / "spool", policy, call, Recorder(), then=cleared))
    assert spool.notify_pending() == []
