"""The deposit key: one per spool, whoever creates it first, never readable by others."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from mailcall.deposit.seal import (
    CLOCK_SKEW,
    DEPOSIT_WINDOW,
    RESEAL_AFTER,
    DepositKeyError,
    _v1,
    delivery_problem,
    deposit_key,
    deposit_token,
    key_path,
    needs_resealing,
    token_valid,
)


def _key_of(spool: str, start, out) -> None:
    start.wait(10)
    out.put(deposit_key(spool).hex())


def test_processes_starting_together_share_one_key(tmp_path: Path):
    """The bridge, the delivery process and its build processes may all need the key at
    the first start: exactly one is written, and all of them use it."""
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    spool = tmp_path / "spool"  # not there yet: created with the key
    procs = [ctx.Process(target=_key_of, args=(str(spool), start, out)) for _ in range(6)]
    for proc in procs:
        proc.start()
    start.set()
    keys = {out.get(timeout=30) for _ in procs}
    for proc in procs:
        proc.join(10)
    assert len(keys) == 1
    assert keys == {deposit_key(spool).hex()}
    info = key_path(spool).stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    assert sorted(p.name for p in spool.iterdir()) == ["deposit.key"]  # no temporary left


def test_unwritable_spool_says_where_and_what_to_do(tmp_path: Path):
    spool = tmp_path / "spool"
    spool.write_text("a file, not a folder")
    with pytest.raises(DepositKeyError, match=r"\[server\] spool_dir"):
        deposit_key(spool)


def test_threads_of_one_process_starting_together_share_one_key(tmp_path: Path):
    """Threads share a pid: the temporary file must still be each one's own."""
    spool = tmp_path / "spool"
    start, keys, errors = threading.Barrier(8), [], []

    def one() -> None:
        start.wait(10)
        try:
            keys.append(deposit_key(spool).hex())
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == [] and len(keys) == 8 and len(set(keys)) == 1
    assert sorted(p.name for p in spool.iterdir()) == ["deposit.key"]


def test_a_failed_key_write_leaves_no_temporary(tmp_path: Path, monkeypatch):
    spool = tmp_path / "spool"
    spool.mkdir()

    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(DepositKeyError, match="No space left on device"):
        deposit_key(spool)
    assert list(spool.iterdir()) == []


def test_token_binds_id_recipient_context_and_time_and_tolerates_case_and_spaces():
    key = bytes(range(32))
    made = 1795887901
    token = deposit_token(key, "<v.1@x>", "Alice@X", "voice-message", at=made)
    assert token.startswith(f"v2.{made}.") and len(token) == 57 and "=" not in token
    assert token_valid(key, f"  {token} ", " <v.1@x> ", "alice@x", "Voice-Message")
    for other in (("<v.2@x>", "alice@x", "voice-message"), ("<v.1@x>", "bob@x", "voice-message"),
                  ("<v.1@x>", "alice@x", "fax-message")):
        assert not token_valid(key, token, *other)
    assert not token_valid(bytes(32), token, "<v.1@x>", "alice@x", "voice-message")
    assert not token_valid(key, "v1.\udcff", "<v.1@x>", "alice@x", "voice-message")
    # The time is under the MAC: moving it forward breaks the token.
    moved = token.replace(f"v2.{made}.", f"v2.{made + 3600}.")
    assert not token_valid(key, moved, "<v.1@x>", "alice@x", "voice-message")


def test_delivery_wants_a_fresh_v2_token():
    """A replayed copy of a genuine deposit is older than the duplicate window: refused.
    v1 tokens carry no time and are refused for delivery (still authentic for the MWI)."""
    key, args = bytes(range(32)), ("<v.1@x>", "alice@x", "voice-message")
    now = 1795887901.0
    fresh = deposit_token(key, *args, at=now - DEPOSIT_WINDOW + 5)
    assert delivery_problem(key, fresh, *args, now=now) is None
    assert delivery_problem(key, deposit_token(key, *args, at=now + CLOCK_SKEW - 5), *args,
                            now=now) is None
    old = deposit_token(key, *args, at=now - DEPOSIT_WINDOW - 5)
    assert "s ago, more than the 86400 s" in delivery_problem(key, old, *args, now=now)
    ahead = deposit_token(key, *args, at=now + CLOCK_SKEW + 60)
    assert "in the future" in delivery_problem(key, ahead, *args, now=now)
    v1 = _v1(key, *args)
    assert token_valid(key, v1, *args)
    assert "old form v1" in delivery_problem(key, v1, *args, now=now)
    assert "not the one mailcall wrote" in delivery_problem(bytes(32), fresh, *args, now=now)
    assert "not the one mailcall wrote" in delivery_problem(key, "v2.1.x", *args, now=now)


def test_a_message_built_long_ago_is_resealed(tmp_path: Path):
    eml = tmp_path / "id.eml"
    assert needs_resealing(eml)  # not built
    eml.write_bytes(b"x")
    assert not needs_resealing(eml)
    past = time.time() - RESEAL_AFTER - 60
    os.utime(eml, (past, past))
    assert needs_resealing(eml)
    assert RESEAL_AFTER < DEPOSIT_WINDOW
