"""PIN checks, many at once: the calls already in a menu keep being answered, the cost of new
hashes, old hashes still valid, refusals as slow as wrong PINs.

The concurrency tests assert the order things happen in, never a time: while a
burst of PIN checks is queued, a job of asyncio's default executor (which the
menus use for speech and decoding) and a real call's key press are served
before most of the burst, whereas when the checks shared that executor they
waited behind all of it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
import sys
import threading
import time

import pytest

from mailcall.core.policy import pins
from mailcall.core.policy.load import compile_text
from mailcall.core.policy.pins import (
    CHECK_THREADS,
    N,
    check_user_pin,
    check_user_pin_off_loop,
    cost_of,
    hash_pin,
    verify_pin,
)
from tests.agi.harness import serving
from tests.support.policies import example_policy_text

from .phone import Phone, Press, run_phone
from .support import PIN, cleanup, start_mailboxes

CHUNK = r"STREAM FILE \S*/call-\S*/[0-9a-f]{12}-0001 "
"""The first sentence of something the menu spoke (an envelope)."""
AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
STORM = 24
"""Logins typed at once: four times asyncio's default executor on a 2-CPU machine."""


def old_cost_hash(pin: str, n: int = 2**14) -> str:
    """A hash as mailcall wrote them before (N = 2**14), made here without hash_pin."""
    salt = b"0123456789abcdef"
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=n, r=8, p=1, dklen=32)
    b64 = base64.b64encode
    return f"scrypt${n}$8$1${b64(salt).decode()}${b64(digest).decode()}"


def policy_with(pin_hash: str):
    return compile_text(example_policy_text({"users": {
        name: {"pin": pin_hash} for name in ("alice", "bernard", "emma")}}),
        name="pins-test-policy.toml")


# ------------------------------------------------------------------ cost


def test_new_hashes_from_the_cli_carry_the_new_cost():
    out = subprocess.run([sys.executable, "-m", "mailcall.core.cli", "hash-pin"],
                         input="2468\n", capture_output=True, text=True, check=True).stdout.strip()
    assert cost_of(out) == N == 2**12
    assert verify_pin(out, "2468") and not verify_pin(out, "2469")


def test_a_hash_made_at_the_old_cost_keeps_verifying_with_its_own_parameters():
    old = old_cost_hash("2468")
    assert cost_of(old) == 2**14
    assert verify_pin(old, "2468") and not verify_pin(old, "2469")
    policy = policy_with(old)
    assert check_user_pin(policy, "alice", "2468")
    assert not check_user_pin(policy, "alice", "1357")


@pytest.mark.parametrize("users_cost", [2**12, 2**14])
def test_a_refusal_costs_the_scrypt_the_users_hashes_cost(monkeypatch, users_cost):
    """No timing oracle when hashes of two costs coexist: an unknown mailbox, a user
    without a PIN and a non-PIN are checked against a decoy of the users' usual cost."""
    policy = policy_with(old_cost_hash("2468", users_cost))
    checked: list[str] = []
    real = pins.verify_pin

    def spy(pin_hash, pin):
        checked.append(pin_hash)
        return real(pin_hash, pin)

    monkeypatch.setattr(pins, "verify_pin", spy)
    assert not check_user_pin(policy, None, "2468")
    assert not check_user_pin(policy, "nobody", "2468")
    assert not check_user_pin(policy, "david", "2468")  # no PIN in the example policy
    assert not check_user_pin(policy, "alice", "12*4")
    assert not check_user_pin(policy, "alice", "")
    assert len(checked) == 5 and {cost_of(h) for h in checked} == {users_cost}
    assert check_user_pin(policy, "alice", "2468")


# ------------------------------------------------------------------ concurrency


async def test_queued_pin_checks_leave_the_default_executor_to_the_calls():
    policy = policy_with(hash_pin("2468"))
    finished: list[int] = []

    async def one(i: int) -> None:
        await check_user_pin_off_loop(policy, "alice", "1357")
        finished.append(i)

    burst = [asyncio.ensure_future(one(i)) for i in range(STORM)]
    await asyncio.sleep(0)  # all submitted
    running = [t.name for t in threading.enumerate() if t.name.startswith("mailcall-pin")]
    await asyncio.to_thread(time.sleep, 0)  # what speech and decoding wait for
    served_after = len(finished)
    await asyncio.gather(*burst)
    assert len(running) <= CHECK_THREADS
    assert served_after < STORM // 2, (
        f"the default executor waited for {served_after} of {STORM} PIN checks")


async def test_the_event_loop_runs_while_a_pin_check_does():
    policy = policy_with(old_cost_hash("2468"))
    check = asyncio.ensure_future(check_user_pin_off_loop(policy, "alice", "2468"))
    turns = 0
    while not check.done():
        turns += 1
        await asyncio.sleep(0)
    assert await check is True
    assert turns > 1


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


class Listener(Phone):
    """alice in her menu: at her first voicemail's audio she waits for `go`, then presses 5
    (repeat: the envelope spoken again, which needs speech, so the default executor)."""

    def __init__(self, go: asyncio.Event, **kw) -> None:
        super().__init__([Press("GET DATA agent-pass", digits=PIN),
                          Press("STREAM FILE vm-onefor", key="1"),
                          Press(AUDIO, key="5"),
                          Press(CHUNK, hangup=True)], **kw)
        self.go = go
        self.at_audio = asyncio.Event()

    def answer(self, line, words):
        reply = super().answer(line, words)
        if "/vm-" in line and not self.at_audio.is_set():
            self.at_audio.set()
            return self._after_go(reply)
        return reply

    async def _after_go(self, reply):
        await self.go.wait()
        self.pressed_at[-1] = (time.monotonic(), self.pressed_at[-1][1])
        return reply


def storm_phone(i: int) -> Phone:
    """A caller from a phone nobody owns, typing a mailbox nobody has and a PIN: one scrypt
    on the decoy, then "incorrect" (each its own account: no lockout in the way)."""
    return Phone([Press("GET DATA vm-login", digits="9990"),
                  Press("GET DATA agent-pass", digits="1357"),
                  Press("STREAM FILE auth-incorrect", hangup=True)],
                 callerid=f"+336990{i:05d}", uniqueid=f"storm.{i}")


def checked_at(phone: Phone) -> float | None:
    """When the server answered this caller's PIN: its first command after the PIN."""
    typed = next((t for t, line in phone.sent_at if "agent-pass" in line), None)
    return next((t for t, line in phone.sent_at if typed is not None and t > typed), None)


def test_a_call_in_its_menu_is_answered_while_a_burst_of_pin_checks_queues(boxes):
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")

    async def go():
        async with serving(boxes.runtime) as server:
            host, port = server.address
            pressed = asyncio.Event()
            alice = Listener(pressed, uniqueid="menu.1")
            listening = asyncio.ensure_future(run_phone(alice, host, port, timeout=60))
            await asyncio.wait_for(alice.at_audio.wait(), 30)
            storm = [storm_phone(i) for i in range(STORM)]
            calls = [asyncio.ensure_future(run_phone(p, host, port, timeout=60))
                     for p in storm]
            while sum(any("agent-pass" in line for _t, line in p.sent_at)
                      for p in storm) < STORM:  # every PIN being typed, then alice presses
                await asyncio.sleep(0.01)
            pressed.set()
            await asyncio.gather(listening, *calls)
            return alice, storm

    alice, storm = asyncio.run(go())
    key_at = alice.pressed_at[-1][0]
    answered = next(t for t, line in alice.sent_at if t > key_at and "-0001 " in line)
    done = sorted(t for t in map(checked_at, storm) if t is not None)
    assert len(done) == STORM
    assert all(any("STREAM FILE auth-incorrect" in c for c in p.commands) for p in storm)
    before = sum(1 for t in done if t < answered)
    assert before < STORM // 2, (
        f"alice's key 5 was answered only after {before} of {STORM} other calls' PIN checks")
