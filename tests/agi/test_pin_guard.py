"""Wrong greeting PINs are counted across calls (agi/pin_guard.py)."""

from __future__ import annotations

import asyncio
import logging

from mailcall.agi.pin_guard import PinGuard
from mailcall.agi.safety import caller_text

from .fake_asterisk import Call, run_call
from .harness import make_runtime, run, serving


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_five_wrong_pins_within_the_window_lock_the_account_for_a_while():
    clock = Clock()
    guard = PinGuard(clock=clock)
    assert [guard.failed("alice") for _ in range(5)] == [False] * 4 + [True]
    assert guard.locked_for("alice") == 15 * 60
    assert guard.locked_for("bob") == 0  # per account
    clock.now += 15 * 60 - 1
    assert guard.locked_for("alice") == 1
    clock.now += 1
    assert guard.locked_for("alice") == 0
    assert guard.failed("alice") is False  # the count started again


def test_failures_older_than_the_window_do_not_count():
    clock = Clock()
    guard = PinGuard(clock=clock)
    for _ in range(4):
        guard.failed("alice")
    clock.now += 15 * 60
    assert guard.failed("alice") is False
    assert guard.locked_for("alice") == 0


def test_a_right_pin_forgets_the_wrong_ones():
    guard = PinGuard(clock=Clock())
    for _ in range(4):
        guard.failed("alice")
    guard.succeeded("alice")
    assert [guard.failed("alice") for _ in range(4)] == [False] * 4


def test_memory_is_bounded():
    clock = Clock()
    guard = PinGuard(clock=clock, max_accounts=100)
    for n in range(1000):
        guard.failed(f"+3361000{n:04d}")
    assert len(guard._failures) == 100
    for n in range(1000):  # a lockout each
        clock.now += 1
        for _ in range(5):
            guard.failed(f"caller {n}")
    clock.now += 15 * 60 + 1
    guard.failed("one more")
    assert len(guard._locked_until) <= 101


def _greeting_calls(tmp_path, calls: list[Call]) -> list[Call]:
    rt = make_runtime(tmp_path)

    async def go():
        async with serving(rt) as server:  # one server: one guard for all the calls
            return [await run_call(call, *server.address) for call in calls]

    return run(go())


def test_calling_again_does_not_give_more_guesses(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    wrong = ["0000", "0001", "0002"]
    first, second, third = _greeting_calls(tmp_path, [
        Call(script="greeting?user=alice", get_data=list(wrong)),
        Call(script="greeting?user=alice", get_data=list(wrong)),
        Call(script="greeting?user=alice", get_data=["2468", "1"]),  # the right PIN, too late
    ])
    assert first.commands.count('GET DATA agent-pass 5000 12\n') == 3
    assert first.variables_set["MAILCALL_STATUS"] == "AUTH_FAILED"
    # Fifth wrong PIN overall: the second call ends there, not after its third try.
    assert second.commands.count('GET DATA agent-pass 5000 12\n') == 2
    assert second.variables_set["MAILCALL_STATUS"] == "AUTH_FAILED"
    # Locked: not even asked, so the right PIN cannot be tried.
    assert 'GET DATA agent-pass 5000 12\n' not in third.commands
    assert third.variables_set["MAILCALL_STATUS"] == "AUTH_FAILED"
    assert not (tmp_path / "greetings" / "alice" / "unavailable.wav").exists()
    sessions = [r.getMessage() for r in caplog.records if r.getMessage().startswith("agi session")]
    assert [s.split('outcome="')[1].split('"')[0] for s in sessions] == [
        "AUTH_FAILED", "AUTH_LOCKED", "AUTH_LOCKED"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "mailcall.agi.greeting"]
    assert "5 wrong PINs for alice within 15 minutes" in warnings[0]
    assert "PIN prompt refused for alice" in warnings[1]


def test_an_unknown_phone_is_locked_out_like_a_known_user(tmp_path):
    calls = _greeting_calls(tmp_path, [
        Call(script="greeting", callerid="+33699999999", get_data=["1", "2", "3"]),
        Call(script="greeting", callerid="+33699999999", get_data=["1", "2", "3"]),
        Call(script="greeting", callerid="+33699999999", get_data=["1"]),
    ])
    counts = [c.commands.count('GET DATA agent-pass 5000 12\n') for c in calls]
    assert counts == [3, 2, 0]


def test_an_unknown_phone_pays_the_same_scrypt_as_a_known_user(tmp_path, monkeypatch):
    """No timing oracle: a wrong PIN for nobody is checked against a decoy hash."""
    from mailcall.core.policy import pins
    from mailcall.core.policy.pins import is_pin_hash, verify_pin

    checked = []

    def spy(pin_hash, pin):
        checked.append(pin_hash)
        return verify_pin(pin_hash, pin)

    monkeypatch.setattr(pins, "verify_pin", spy)  # the greeting's check (pins.check_user_pin)
    (call,) = _greeting_calls(tmp_path, [
        Call(script="greeting", callerid="+33699999999", get_data=["2468", "1", "2"])])
    assert call.variables_set["MAILCALL_STATUS"] == "AUTH_FAILED"
    assert len(checked) == 3 and len(set(checked)) == 1 and is_pin_hash(checked[0])


def test_guesses_under_way_count_against_the_budget():
    guard = PinGuard(clock=Clock())
    assert [guard.begin("alice") for _ in range(6)] == [True] * 5 + [False]
    guard.abandoned("alice")  # that caller hung up while being asked
    assert guard.begin("alice") is True
    for _ in range(4):
        assert guard.failed("alice") is False
    assert guard.failed("alice") is True  # the fifth wrong PIN locks
    assert guard.begin("alice") is False and guard.locked_for("alice") > 0
    assert guard._pending == {}  # nothing left under way


def test_parallel_calls_share_one_budget_of_guesses(tmp_path):
    """Ten calls at once, three wrong PINs each: five guesses in all, not ten or thirty."""
    rt = make_runtime(tmp_path)
    calls = [Call(script="greeting?user=alice", get_data=["0000", "0001", "0002"])
             for _ in range(10)]

    async def go():
        async with serving(rt) as server:
            return await asyncio.gather(*(run_call(c, *server.address) for c in calls))

    done = run(go())
    asked = sum(c.commands.count('GET DATA agent-pass 5000 12\n') for c in done)
    assert asked == 5
    assert all(c.variables_set["MAILCALL_STATUS"] == "AUTH_FAILED" for c in done)


def test_a_pin_ended_with_hash_opens_the_greeting_script(tmp_path):
    """One PIN step for both menus (pin_guard.ask_pin): the greeting script used to
    check ``2468#`` as typed, so a caller ending the PIN with # was refused; the
    mailbox stripped it."""
    (call,) = _greeting_calls(tmp_path, [
        Call(script="greeting?user=alice", get_data=["2468#", "1"], record="dtmf")])
    assert call.commands.count('GET DATA agent-pass 5000 12\n') == 1
    assert call.variables_set["MAILCALL_STATUS"] == "GREETING_SAVED"
    assert (tmp_path / "greetings" / "alice" / "unavailable.wav").is_file()


def test_the_greeting_lockout_log_shows_the_caller_id_cleaned(tmp_path, caplog):
    """The calling number is caller-controlled: shown by the one rule (caller_text, as the
    mailbox does), one line, bounded. The greeting script logged ``%r`` of it raw: escapes
    instead of the cleaned text, and a 4000-character caller ID whole in each line."""
    caplog.set_level(logging.WARNING, logger="mailcall.agi")
    forged = "+336\u2028FAKE: admin logged in\u202e\x1b[2J" + "9" * 4000
    _greeting_calls(tmp_path, [
        Call(script="greeting?user=alice", callerid=forged, get_data=["0000"] * 3),
        Call(script="greeting?user=alice", callerid=forged, get_data=["0000"] * 3),
        Call(script="greeting?user=alice", callerid=forged, get_data=["2468"]),
    ])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING
                and r.name == "mailcall.agi.greeting"]
    assert len(warnings) == 2, warnings
    assert "5 wrong PINs for alice" in warnings[0] and "PIN prompt refused" in warnings[1]
    for line in warnings:
        assert repr(caller_text(forged)) in line, line
        assert "FAKE: admin logged in" in line and len(line) < 400
        assert not any(c in line for c in "\u2028\u202e\x1b\n\r"), repr(line)
