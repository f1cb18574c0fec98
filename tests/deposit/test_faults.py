"""Whatever fails, every deposit ends up in the mailbox exactly once (counted by Message-ID)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import pytest

from mailcall.deposit.headers import message_id
from mailcall.deposit.seal import deposit_key
from mailcall.deposit.spool import Spool, spool_id
from tests.deposit.support import (
    FAST,
    MEDIA,
    USERS,
    descendants,
    fax,
    gone,
    make_policy,
    make_worker,
    message_ids,
    policy_text,
    run,
    states,
    voice,
    wait_states,
)
from tests.support import REPO

pytestmark = pytest.mark.dovecot


def expected_ids(deposits, spool_dir: Path) -> set[str]:
    return {
        message_id(
            "voice" if d.__class__.__name__ == "VoiceMessage" else "fax",
            d.mailbox,
            d.call_id,
            "example.test",
            key=deposit_key(spool_dir),
        )
        for d in deposits
    }


def all_ids(dovecot) -> list[str]:
    ids = []
    for address in USERS:
        ids += list(message_ids(dovecot, address).elements())
    return ids


def test_dovecot_down_while_depositing_then_up(dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    worker = make_worker(tmp_path / "spool", policy)
    deposits = [voice(f"1764261000.{n}", mailbox=("alice", "bob")[n % 2]) for n in range(6)]
    deposits += [fax("1764261000.90"), voice("1764261000.91", recording="")]  # + a missed call
    dovecot.stop()

    async def scenario():
        await worker.start()
        try:
            for d in deposits:
                worker.spool.accept(d)
                worker.wake()
            # Nothing can be delivered: every deposit is deferred, none lost, none parked.
            await wait_states(worker.spool, "deferred", len(deposits), 30)
            for record in worker.spool.records():
                assert record.attempts >= 1
                assert "connect: cannot connect to lmtp 127.0.0.1:" in record.last_error
                assert "ConnectionRefusedError" in record.last_error, record.last_error
            await asyncio.get_running_loop().run_in_executor(None, dovecot.start)
            await wait_states(worker.spool, "delivered", len(deposits), 60)
        finally:
            await worker.stop(5)

    run(scenario())
    ids = all_ids(dovecot)
    assert sorted(ids) == sorted(expected_ids(deposits, worker.spool.root))  # each once


def start_worker(spool_dir: Path, policy_file: Path, log) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.deposit.worker_main", str(spool_dir), str(policy_file)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the kill takes the build processes too
    )
    return proc


def kill_group(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10)


def kill_serving_process(proc: subprocess.Popen, log_path: Path) -> None:
    """SIGKILL the serving process alone, as the OOM killer or `kill -9` would: its delivery
    process and the build processes must go with it, or the restarted server would run a
    second worker on the same spool."""
    below = descendants(proc.pid)
    assert below, "the serving process had no delivery process"
    proc.kill()
    proc.wait(10)
    try:
        wait_until(lambda: all(gone(p) for p in below), 10,
                   f"processes {sorted(below)} to die with their parent", log_path)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # leftovers, if the assertion failed


def delivered_count(spool: Spool) -> int:
    return len(spool.ids("delivered"))


def wait_until(predicate, timeout: float, what: str, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what}; worker log:\n"
                + log_path.read_text(errors="replace")[-4000:]
            )
        time.sleep(0.005)


def dedupe_dovecot(dovecot_factory):
    """A Dovecot running contrib/delivery/mailcall-dedupe.sieve before the user's script."""
    folder = Path(tempfile.mkdtemp(prefix="mailcall-sieve-"))
    os.chmod(folder, 0o755)  # noqa: S103 - Dovecot processes (mail user) must read the script
    script = folder / "mailcall-dedupe.sieve"
    text = (REPO / "contrib" / "delivery" / "mailcall-dedupe.sieve").read_text()
    script.write_text(text.replace("mailcall@example.org", "mailcall@example.test"))
    dovecot = dovecot_factory(users=USERS, plugin={"sieve_before": str(script)})
    dovecot.sievec(script)
    return dovecot, folder


KILLS = (4, 12)
"""Kill the worker when this many deposits are recorded as delivered."""


@pytest.mark.parametrize("dedupe", [True, False], ids=["with-dedupe-sieve", "mailcall-alone"])
def test_worker_sigkilled_mid_delivery_then_restarted(dovecot_factory, tmp_path, dedupe):
    if dedupe:
        dovecot, folder = dedupe_dovecot(dovecot_factory)
    else:
        dovecot, folder = dovecot_factory(users=USERS), None
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(policy_text(f"unix:{dovecot.lmtp_socket}", formats=("opus",)))
    spool = Spool(tmp_path / "spool")
    recordings = [MEDIA / "voicemail-dtmf-end.wav", MEDIA / "voicemail-hangup-end.wav"]
    deposits = [
        voice(f"1764262000.{n}", mailbox=("alice", "bob")[n % 2], recording=str(recordings[n % 2]))
        for n in range(24)
    ]
    for d in deposits:
        spool.accept(d)
    log_path = tmp_path / "worker.log"
    try:
        with open(log_path, "ab") as log:
            for round_, target in enumerate(KILLS):
                proc = start_worker(spool.root, policy_file, log)
                try:
                    wait_until(
                        lambda t=target: delivered_count(spool) >= t,
                        90,
                        f"{target} deliveries (round {round_})",
                        log_path,
                    )
                except BaseException:
                    kill_group(proc)
                    raise
                kill_serving_process(proc, log_path)
                assert delivered_count(spool) < len(deposits), "killed too late to test anything"
            proc = start_worker(spool.root, policy_file, log)
            try:
                wait_until(
                    lambda: delivered_count(spool) == len(deposits), 120, "all deliveries", log_path
                )
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    kill_group(proc)
    finally:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    ids = all_ids(dovecot)
    expected = expected_ids(deposits, spool.root)
    assert set(states(spool).values()) == {"delivered"}
    assert set(states(spool)) == {spool_id(d) for d in deposits}
    assert set(ids) == expected, "a deposit is missing from the mailboxes"
    if dedupe:
        assert sorted(ids) == sorted(expected), "delivered more than once despite the Sieve rule"
    else:
        # Without the rule, the only duplicates possible are deposits whose attempt was cut
        # by a kill after Dovecot stored the message and before the 250 was recorded.
        counts = Counter(ids)
        duplicated = {mid for mid, n in counts.items() if n > 1}
        retried = {r.message_id for r in spool.records() if r.attempts > 1}
        assert duplicated <= retried
        assert all(n == 2 for n in counts.values() if n > 1)
        assert len(duplicated) <= len(KILLS) * FAST.concurrency
