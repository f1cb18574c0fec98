"""The spool worker in its own process: deliveries, plans from the parent, restarts, priority."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailcall.deposit.delivery_process import DELIVERY_NICENESS, DeliveryProcess
from mailcall.deposit.headers import message_id
from mailcall.deposit.spool import Spool, SpoolDepositor
from mailcall.plugins import deposit as plugin
from tests.deposit.support import (
    FAST,
    MEDIA,
    USERS,
    make_policy,
    message_ids,
    plugin_manager,
    run,
    voice,
)

pytestmark = pytest.mark.dovecot

REPO = Path(__file__).resolve().parents[2]


def make_process(spool_dir: Path, policy, planned: list, delivered: list) -> DeliveryProcess:
    def planner(deposit):
        planned.append(deposit.call_id)
        return plugin.plan_for(policy, deposit)

    return DeliveryProcess(
        Spool(spool_dir),
        planner=planner,
        origin=lambda: plugin.origin_for(policy),
        target=lambda: plugin.target_for(policy),
        encoders=plugin.encoders_from(plugin_manager()),
        settings=FAST,
        delivered=lambda deposit, plan, mid: delivered.append((deposit.call_id, plan.recipient,
                                                               mid)),
    )


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_deliveries_go_through_the_child_with_plans_and_notices_in_the_parent(
        dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}", formats=("opus",))
    planned: list = []
    delivered: list = []
    proc = make_process(tmp_path / "spool", policy, planned, delivered)
    depositor = SpoolDepositor(proc.spool)
    depositor.subscribe(proc.wake)
    calls = [voice(f"1764260600.{n}", mailbox=("alice", "bob")[n % 2],
                   recording=str(MEDIA / "voicemail-dtmf-end.wav")) for n in range(4)]

    async def go():
        await proc.start()
        try:
            child = proc.process.pid
            assert child != os.getpid()
            assert nice_of(child) == nice_of(os.getpid()) + DELIVERY_NICENESS
            for call in calls:
                await depositor.accept(call)
            await proc.drain(60)
        finally:
            await proc.stop(5)
        return child

    child = run(go())
    assert not Path(f"/proc/{child}").exists()  # stopped, and reaped
    assert sorted(planned) == sorted(c.call_id for c in calls)  # asked of the parent
    assert sorted(d[0] for d in delivered) == sorted(c.call_id for c in calls)
    for call in calls:
        mid = message_id("voice", call.mailbox, call.call_id, "example.test")
        assert message_ids(dovecot, f"{call.mailbox}@example.test")[mid] == 1
        assert (call.call_id, f"{call.mailbox}@example.test", mid) in delivered


def test_a_plan_the_parent_refuses_parks_the_deposit(dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    proc = make_process(tmp_path / "spool", policy, [], [])
    ghost = voice("1764260700.1", mailbox="nobody-here",
                  recording=str(MEDIA / "voicemail-dtmf-end.wav"))

    async def go():
        await proc.start()
        try:
            proc.spool.accept(ghost)
            proc.wake()
            await proc.drain(30)
        finally:
            await proc.stop(5)

    run(go())
    records = {r["id"]: r for r in proc.spool.records()}
    (record,) = records.values()
    assert record["state"] == "parked" and "nobody-here" in record["last_error"]


def test_a_killed_child_is_started_again_and_delivers_what_waits(dovecot_factory, tmp_path,
                                                                  monkeypatch):
    from mailcall.deposit import delivery_process

    monkeypatch.setattr(delivery_process, "RESTART_DELAYS", (0.2,))
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    delivered: list = []
    proc = make_process(tmp_path / "spool", policy, [], delivered)
    call = voice("1764260800.1", recording=str(MEDIA / "voicemail-hangup-end.wav"))

    async def go():
        await proc.start()
        try:
            first = proc.process.pid
            os.kill(first, signal.SIGKILL)
            for _ in range(200):  # restarted after 0.2 s
                await asyncio.sleep(0.05)
                if proc.process.pid != first and proc._conn is not None \
                        and proc._ready is not None and proc._ready.done():
                    break
            assert proc.process.pid != first
            proc.spool.accept(call)
            proc.wake()
            await proc.drain(30)
        finally:
            await proc.stop(5)

    run(go())
    mid = message_id("voice", "alice", call.call_id, "example.test")
    assert message_ids(dovecot, "alice@example.test")[mid] == 1
    assert [d[0] for d in delivered] == [call.call_id]


def test_an_unusable_spool_fails_the_start_with_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    policy = make_policy("unix:/nonexistent/lmtp")
    proc = make_process(blocker / "spool", policy, [], [])

    async def go():
        with pytest.raises(RuntimeError, match="cannot use the deposit spool"):
            await proc.start()
        await proc.stop(1)
        assert proc._restart is None

    run(go())


CHILD_OF_KILLED_PARENT = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.deposit.test_delivery_process import make_process
from tests.deposit.support import make_policy

async def main():
    proc = make_process(Path({spool!r}), make_policy("unix:/nonexistent/lmtp"), [], [])
    await proc.start()
    print(proc.process.pid, flush=True)
    await asyncio.sleep(60)

asyncio.run(main())
"""


def test_the_child_dies_with_a_killed_parent(tmp_path):
    """A SIGKILLed ``mailcall serve`` must not leave a delivery process behind (a restarted
    server would then run two workers on one spool)."""
    code = CHILD_OF_KILLED_PARENT.format(repo=str(REPO), spool=str(tmp_path / "spool"))
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    try:
        child = int(parent.stdout.readline())
        assert Path(f"/proc/{child}").exists()
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and Path(f"/proc/{child}").exists():
            time.sleep(0.05)
        assert not Path(f"/proc/{child}").exists()
    finally:
        parent.kill()
