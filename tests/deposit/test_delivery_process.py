"""The spool worker in its own process: deliveries, plans from the parent, restarts, priority.

The worker polls only every 5 min here and no test calls ``drain`` (which wakes the
worker itself): a delivery within the tests' timeouts proves the wake-up path.
"""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mailcall.core.errors import ServiceStartError
from mailcall.deposit import delivery_child, delivery_process
from mailcall.deposit import pipe_protocol as pipe
from mailcall.deposit.delivery_process import DELIVERY_NICENESS, DeliveryProcess
from mailcall.deposit.headers import message_id
from mailcall.deposit.seal import deposit_key
from mailcall.deposit.spool import Spool
from mailcall.deposit.spool_depositor import SpoolDepositor
from mailcall.deposit.worker import WorkerSettings
from mailcall.plugins import deposit as plugin
from tests.deposit.support import (
    GARBLED_FRAMES,
    MEDIA,
    USERS,
    descendants,
    garbling_child_main,
    gone,
    make_policy,
    message_ids,
    plugin_manager,
    run,
    stat_fields,
    voice,
    wait_states,
)
from tests.support import REPO

pytestmark = pytest.mark.dovecot

NO_POLL = WorkerSettings(retry_base=0.2, retry_max=1.0, poll_interval=300, delivery_timeout=20)


class Recorder:
    """The parent's side effects: plans asked for, deliveries told, and a way to wait."""

    def __init__(self) -> None:
        self.planned: list[str] = []
        self.delivered: list[tuple[str, str, str]] = []
        self.event = asyncio.Event()

    def on_delivered(self, deposit, plan, mid) -> None:
        self.delivered.append((deposit.call_id, plan.recipient, mid))
        self.event.set()

    async def wait_for(self, count: int, timeout: float = 30) -> None:
        async with asyncio.timeout(timeout):
            while len(self.delivered) < count:
                self.event.clear()
                await self.event.wait()


def make_process(spool_dir: Path, policy, recorder: Recorder | None = None,
                 depositor: SpoolDepositor | None = None) -> DeliveryProcess:
    recorder = recorder or Recorder()

    def planner(deposit):
        recorder.planned.append(deposit.call_id)
        return plugin.plan_for(policy, deposit)

    process = DeliveryProcess(
        depositor.spool if depositor else Spool(spool_dir),
        planner=planner,
        origin=lambda: plugin.origin_for(policy),
        target=lambda: plugin.target_for(policy),
        encoders=plugin.encoders_from(plugin_manager()),
        settings=NO_POLL,
        delivered=recorder.on_delivered,
        depositor=depositor,
    )
    if depositor is not None:  # as plugins/deposit.py wires them
        depositor.subscribe(process.wake)
    return process


async def wait_gone(pids, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(gone(p) for p in pids):
            return True
        await asyncio.sleep(0.05)
    return False


def test_deliveries_go_through_the_child_with_plans_and_notices_in_the_parent(
        dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}", formats=("opus",))
    rec = Recorder()
    depositor = SpoolDepositor(Spool(tmp_path / "spool"))
    proc = make_process(tmp_path / "spool", policy, rec, depositor)
    calls = [voice(f"1764260600.{n}", mailbox=("alice", "bob")[n % 2],
                   recording=str(MEDIA / "voicemail-dtmf-end.wav")) for n in range(4)]

    async def go():
        await proc.start()
        try:
            child = proc.process.pid
            assert child != os.getpid()
            assert int(stat_fields(child)[16]) == int(stat_fields(os.getpid())[16]) \
                + DELIVERY_NICENESS
            for call in calls:
                await depositor.accept(call)
            await rec.wait_for(len(calls))
        finally:
            await proc.stop(5)
        assert gone(child)  # stopped, and reaped

    run(go())
    assert sorted(rec.planned) == sorted(c.call_id for c in calls)  # asked of the parent
    for call in calls:
        mid = message_id("voice", call.mailbox, call.call_id, "example.test",
                         key=deposit_key(tmp_path / "spool"))
        assert message_ids(dovecot, f"{call.mailbox}@example.test")[mid] == 1
        assert (call.call_id, f"{call.mailbox}@example.test", mid) in rec.delivered


def test_a_plan_the_parent_refuses_parks_the_deposit(dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    proc = make_process(tmp_path / "spool", policy)
    ghost = voice("1764260700.1", mailbox="nobody-here",
                  recording=str(MEDIA / "voicemail-dtmf-end.wav"))

    async def go():
        await proc.start()
        try:
            proc.spool.accept(ghost)
            proc.wake()
            await wait_states(proc.spool, "parked", 1, 30)
        finally:
            await proc.stop(5)

    run(go())
    (record,) = proc.spool.records()
    assert record.state == "parked" and "nobody-here" in record.last_error


def test_an_unanswerable_plan_defers_instead_of_parking(dovecot_factory, tmp_path):
    """A failure of the parent itself (here: the target) is temporary, as it was in-process."""
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    proc = make_process(tmp_path / "spool", policy)
    broken = [True]

    def target():
        if broken[0]:
            raise OSError("resolver down")
        return plugin.target_for(policy)

    proc.target = target
    call = voice("1764260750.1", recording=str(MEDIA / "voicemail-dtmf-end.wav"))
    rec = Recorder()
    proc.delivered = rec.on_delivered

    async def go():
        await proc.start()
        try:
            proc.spool.accept(call)
            proc.wake()
            await wait_states(proc.spool, "deferred", 1, 30)
            broken[0] = False
            await rec.wait_for(1)  # the retry (0.2 s later) delivers it
        finally:
            await proc.stop(5)

    run(go())
    assert message_ids(dovecot, "alice@example.test")[
        message_id("voice", "alice", call.call_id, "example.test",
                   key=deposit_key(tmp_path / "spool"))] == 1


def test_a_killed_child_is_started_again_with_its_builds_gone_and_delivers_what_waits(
        dovecot_factory, tmp_path, monkeypatch):
    monkeypatch.setattr(delivery_process, "RESTART_DELAYS", (0.5,))
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}", formats=("opus",))
    rec = Recorder()
    depositor = SpoolDepositor(Spool(tmp_path / "spool"))
    proc = make_process(tmp_path / "spool", policy, rec, depositor)
    first_call = voice("1764260800.1", recording=str(MEDIA / "voicemail-hangup-end.wav"))
    second_call = voice("1764260800.2", recording=str(MEDIA / "voicemail-dtmf-end.wav"))

    async def go():
        await proc.start()
        try:
            await depositor.accept(first_call)
            await rec.wait_for(1)
            first = proc.process.pid
            builds = descendants(first)
            assert builds, "the Opus build ran in a build process of the child"
            os.kill(first, signal.SIGKILL)
            # Accepted while no child runs: the next child must find it without a poll.
            await depositor.accept(second_call)
            assert await wait_gone(builds), "build processes outlived their parent"
            await rec.wait_for(2)
            assert proc.process.pid != first
        finally:
            await proc.stop(5)

    run(go())
    for call in (first_call, second_call):
        mid = message_id("voice", "alice", call.call_id, "example.test",
                         key=deposit_key(tmp_path / "spool"))
        assert message_ids(dovecot, "alice@example.test")[mid] == 1


def test_stop_during_the_restart_delay_leaves_no_child(tmp_path, monkeypatch):
    monkeypatch.setattr(delivery_process, "RESTART_DELAYS", (0.3,))
    proc = make_process(tmp_path / "spool", make_policy("unix:/nonexistent/lmtp"))

    async def go():
        await proc.start()
        first = proc.process.pid
        os.kill(first, signal.SIGKILL)
        await asyncio.sleep(0.1)  # exit seen, restart pending
        await proc.stop(1)
        await asyncio.sleep(0.6)  # past the restart delay
        assert proc.process.pid == first and gone(first)
        assert proc._restart is None and proc._respawning is None

    run(go())


def test_stop_signals_do_not_kill_the_child_mid_delivery(tmp_path):
    """systemd without KillMode=mixed, or Ctrl-C, signals every process: the child waits
    for the serving process's word."""
    proc = make_process(tmp_path / "spool", make_policy("unix:/nonexistent/lmtp"))

    async def go():
        await proc.start()
        try:
            child = proc.process.pid
            for number in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                os.kill(child, number)
            await asyncio.sleep(0.5)
            assert not gone(child) and proc.process.pid == child
        finally:
            await proc.stop(2)
        assert gone(child)

    run(go())


def test_recovery_runs_in_the_parent_on_the_accept_thread(tmp_path):
    """Spool.recover empties tmp/, where accepts write: never at the same time as one."""
    depositor = SpoolDepositor(Spool(tmp_path / "spool"))
    proc = make_process(tmp_path / "spool", make_policy("unix:/nonexistent/lmtp"),
                        depositor=depositor)
    threads = []
    recover = depositor.spool.recover

    def spy():
        import threading

        threads.append(threading.current_thread().name)
        return recover()

    depositor.spool.recover = spy
    depositor.spool.ensure()
    leftover = depositor.spool.root / "tmp" / "half-written.tmp"
    leftover.write_text("x")

    async def go():
        await proc.start()
        await proc.stop(1)

    run(go())
    assert threads and all(name.startswith("spool-accept") for name in threads)
    assert not leftover.exists()


def test_an_unusable_spool_fails_the_start_with_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = make_process(blocker / "spool", make_policy("unix:/nonexistent/lmtp"))

    async def go():
        with pytest.raises(ServiceStartError, match="cannot use the deposit spool"):
            await proc.start()
        await proc.stop(1)
        assert proc._restart is None

    run(go())



def test_one_delivery_process_per_spool(tmp_path):
    """The spool is held from start to stop: a second one is refused with the holder's
    pid, before it could recover or deliver anything; after stop, another may start."""
    policy = make_policy("unix:/nonexistent/lmtp")
    spool = tmp_path / "spool"
    first, second = make_process(spool, policy), make_process(spool, policy)

    async def go():
        await first.start()
        leftover = spool / "tmp" / "being-written-by-the-first"
        leftover.write_bytes(b"an accept in progress")
        with pytest.raises(ServiceStartError,
                           match=rf"already used by another 'mailcall serve' \(pid {os.getpid()}"):
            await second.start()
        assert second.process is None and leftover.exists()  # no child, no recovery
        await second.stop(1)
        await first.stop(5)
        await second.start()  # the first released it
        await second.stop(5)

    run(go())


def test_the_lock_file_is_never_followed_through_a_link(tmp_path):
    """The spool root is readable by Asterisk's group: a link planted as serve.lock must
    not make mailcall empty the file it points to, nor count as the lock."""
    spool = tmp_path / "spool"
    spool.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (spool / "serve.lock").symlink_to(victim)
    with pytest.raises(OSError):
        Spool(spool).lock()
    assert victim.read_text() == "precious"
    (spool / "serve.lock").unlink()
    fd = Spool(spool).lock()
    try:
        assert stat.S_IMODE(os.stat(spool / "serve.lock").st_mode) == 0o600
        assert (spool / "serve.lock").read_text() == f"{os.getpid()}\n"
    finally:
        os.close(fd)

CHILD_OF_KILLED_PARENT = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from tests.deposit.test_delivery_process import make_process
from tests.deposit.support import make_policy

async def main():
    proc = make_process(Path({spool!r}), make_policy("unix:/nonexistent/lmtp"))
    await proc.start()
    print(proc.process.pid, flush=True)
    await asyncio.sleep(60)

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_the_child_dies_with_a_killed_parent(tmp_path):
    """A SIGKILLed ``mailcall serve`` must not leave a delivery process behind (a restarted
    server would then run two workers on one spool). The child is stopped (SIGSTOP) first,
    so that only the parent-death signal can end it, not its reading the closed pipe."""
    script = tmp_path / "parent.py"
    script.write_text(CHILD_OF_KILLED_PARENT.format(repo=str(REPO),
                                                    spool=str(tmp_path / "spool")))
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE,
                              text=True, cwd=REPO)
    child = None
    try:
        child = int(parent.stdout.readline())
        os.kill(child, signal.SIGSTOP)
        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not gone(child):
            time.sleep(0.05)
        assert gone(child)
    finally:
        parent.kill()
        if child is not None and not gone(child):
            os.kill(child, signal.SIGKILL)


def test_a_restart_that_cannot_start_a_process_is_tried_again(tmp_path, monkeypatch, caplog):
    """E.g. ENOMEM right after the OOM killer took the child: no exit will come to
    trigger the next attempt, so the service schedules it itself."""
    monkeypatch.setattr(delivery_process, "RESTART_DELAYS", (0.2,))
    proc = make_process(tmp_path / "spool", make_policy("unix:/nonexistent/lmtp"))
    real_start = type(multiprocessing_process()).start
    failures = [1]

    def start(self):
        if failures and failures.pop():
            raise OSError(12, "Cannot allocate memory")
        return real_start(self)

    async def go():
        await proc.start()
        first = proc.process.pid
        monkeypatch.setattr(type(proc.process), "start", start)
        os.kill(first, signal.SIGKILL)
        async with asyncio.timeout(10):
            while proc.process.pid == first or proc._ready is None or not proc._ready.done():
                await asyncio.sleep(0.05)
        assert not gone(proc.process.pid)
        await proc.stop(2)

    caplog.set_level("ERROR", logger="mailcall.deposit.delivery_process")
    run(go())
    assert "was killed by SIGKILL" in caplog.text
    assert "Cannot allocate memory" in caplog.text and "trying again" in caplog.text


def multiprocessing_process():
    import multiprocessing

    return multiprocessing.get_context("spawn").Process()


def test_a_wedged_child_is_killed_and_replaced(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(delivery_process, "WAKE_TIMEOUT", 0.5)
    monkeypatch.setattr(delivery_process, "RESTART_DELAYS", (0.2,))
    proc = make_process(tmp_path / "spool", make_policy("unix:/nonexistent/lmtp"))

    async def go():
        await proc.start()
        await asyncio.sleep(0.3)  # its own start-up wake-up answered
        first = proc.process.pid
        os.kill(first, signal.SIGSTOP)  # alive, but reads nothing
        proc.wake()
        async with asyncio.timeout(10):
            while proc.process.pid == first or proc._ready is None or not proc._ready.done():
                await asyncio.sleep(0.05)
        assert gone(first) and not gone(proc.process.pid)
        await proc.stop(2)

    caplog.set_level("ERROR", logger="mailcall.deposit.delivery_process")
    run(go())
    assert "has not answered a wake-up" in caplog.text


def test_garbled_frames_either_way_are_reported_and_ignored(dovecot_factory, tmp_path,
                                                           monkeypatch, caplog, capfd):
    """Neither side dies of a frame it cannot read (an upgrade while serving, a bug): it
    says so in the log and goes on; the next deposit is planned and delivered as usual."""
    monkeypatch.setattr(delivery_child, "main", garbling_child_main)
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    rec = Recorder()
    depositor = SpoolDepositor(Spool(tmp_path / "spool"))
    proc = make_process(tmp_path / "spool", policy, rec, depositor)
    call = voice("1764260900.1", recording=str(MEDIA / "voicemail-dtmf-end.wav"))
    caplog.set_level("ERROR", logger="mailcall.deposit.delivery_process")

    async def go():
        await proc.start()
        try:
            child = proc.process.pid
            proc._conn.send_bytes(b"\xff\xfe not json either")
            proc._conn.send_bytes(pipe.encode(pipe.Ready()))  # only the child sends it
            proc._conn.send_bytes(b'{"type": "stop", "grace": "soon"}')
            await depositor.accept(call)
            await rec.wait_for(1)
            assert proc.process.pid == child and not gone(child)  # never restarted
        finally:
            await proc.stop(5)

    run(go())
    assert message_ids(dovecot, "alice@example.test")[
        message_id("voice", "alice", call.call_id, "example.test",
                   key=deposit_key(tmp_path / "spool"))] == 1
    unreadable = [r for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(unreadable) == len(GARBLED_FRAMES)
    assert "unknown message type" not in caplog.text  # each names its own fault:
    assert "not a JSON message" in caplog.text and "wake is sent by mailcall serve" in caplog.text
    assert "plan-request.number: expected an integer" in caplog.text
    child_log = capfd.readouterr().err
    assert child_log.count("mailcall serve sent the delivery process a message it cannot read") \
        == 3, child_log
    assert "bad stop message: stop.grace: expected a number" in child_log
