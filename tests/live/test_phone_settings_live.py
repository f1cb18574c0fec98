"""Absence and PIN by phone on the real Asterisk, keys typed as RFC 4733 DTMF (issue 12 §7).

`mailcall serve` runs as the admin starts it (tests/live/conftest.py): the
FastAGI menu and routing, the user store's service, the greetings and the
per-user Sieve scripts in one process, the store at its default place beside
the greetings folder. Alice dials ``*99`` from her phone, types her PIN, then
0 (options) and 3 (absence): the last day of her absence as DDMM and Carole's
extension. The one stored fact (audit origin ``phone``) is then obeyed by both
sides: ``mailcall route`` and a real call ring Carole first, and her Sieve
auto-reply script and absence greeting are regenerated. Then 0, 5: a new PIN
twice; the next call opens her mailbox with it, the old one is refused.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta

from mailcall.sieve.generate import USERS_DIR
from mailcall.userstore.sqlite_store import SqliteStore
from tests.sieve.support import PARIS
from tests.support.sipp import AwaitHangup, Dtmf, Hangup, Pause
from tests.support.waiting import wait_until

from .checks import agi_rx, leave_message
from .conftest import MAILCALL
from .test_phone_menu import MENU_DIALPLAN, PIN
from .test_phone_menu import menu_live as menu_live  # the fixture

ALICE = "alice@stockinox.example"
NEW_PIN = "97531"
QUESTION_MS = 4500
"""Time for a question to be spoken (made by the speech engine the first time) before
typing: DTMF that arrives between two AGI commands is dropped by Asterisk's res_agi."""

assert MENU_DIALPLAN  # the entries *99 and the DID are those of test_phone_menu.py


def store_entries(live) -> list[tuple[str, str, str]]:
    backend = SqliteStore(live.work / "users" / "store.sqlite")
    try:
        return [(e.field, e.stamp.origin, e.stamp.actor) for e in backend.audit("alice")]
    finally:
        backend.close()


def own_absences(live):
    backend = SqliteStore(live.work / "users" / "store.sqlite")
    try:
        return backend.read("alice").absences
    finally:
        backend.close()


def route(live, at: datetime) -> dict:
    done = subprocess.run(
        [str(MAILCALL), "route", "--to", "201", "--at", at.strftime("%Y-%m-%dT%H:%M"),
         "--policy", str(live.policy_path), "--store", str(live.work / "users" / "store.sqlite"),
         "--json"], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_an_absence_set_by_phone_is_obeyed_by_calls_and_by_mail(menu_live):
    live = menu_live
    script = live.work / "sieve" / USERS_DIR / f"{ALICE}.sieve"
    greeting = live.greetings / "alice" / "generated-absence"
    assert not script.exists()
    last = (datetime.now(PARIS) + timedelta(days=9)).date()
    mark = live.ast.mark()
    steps = [*PIN,
             Dtmf("0"), Pause(QUESTION_MS),          # options (cuts the counts)
             Dtmf("3"), Pause(QUESTION_MS),          # absence: "type the last day..."
             Dtmf(f"{last.day:02d}{last.month:02d}"), Pause(QUESTION_MS),  # 4 digits: no #
             Dtmf("203#"), Pause(9000),              # Carole; saved, said back, the options
             Dtmf("#"), Pause(2500),                 # back to the main menu
             Dtmf("#"), AwaitHangup(20000)]          # goodbye
    caller = live.call("*99", steps, via="201", timeout=150)
    assert caller.final_code() == 200
    log = live.ast.log_since(mark)
    rx = agi_rx(log)
    assert any(line.startswith("GET DATA") and "/phrases/absence_until-en/" in line
               for line in rx), rx
    assert any(line.startswith("GET DATA") and "/phrases/absence_backup-en/" in line
               for line in rx), rx
    assert 'SET VARIABLE MAILCALL_STATUS "MAILBOX_DONE"' in rx, rx

    # ---- the store: one absence, back on the day after the last, Carole, audited "phone"
    assert store_entries(live) == [("absence", "phone", "alice")], live.mailcall_log()[-3000:]
    [absence] = own_absences(live)
    assert absence.backup == "carole"
    assert absence.until.astimezone(PARIS).date() == last + timedelta(days=1)
    assert "set an absence by phone" in live.mailcall_log()

    # ---- the next route decision: Carole first (mailcall route reads the same store)
    plan = route(live, datetime.now(PARIS) + timedelta(hours=1))
    rings = [step["who"] for step in plan["steps"] if step["kind"] == "ring"]
    assert rings[0] == "carole" and "alice" not in rings, plan

    # ---- mail: the serving process rewrote Alice's auto-reply script, and her greeting
    assert wait_until(lambda: script.exists() and "vacation" in script.read_text(), 20), \
        live.mailcall_log()[-4000:]
    assert wait_until(lambda: greeting.with_suffix(".wav").exists(), 20), \
        live.mailcall_log()[-4000:]

    # ---- and a real call to her number rings Carole, not Alice
    alice = live.phone("201", "answer")
    carole = live.phone("203", "ringout")
    live.phone("202", "ringout")
    mark = live.ast.mark()
    call = live.call("+33140000201", leave_message(live.media.speech), from_name="Client")
    assert call.final_code() == 200
    dials = [line for line in agi_rx(live.ast.log_since(mark)) if line.startswith("EXEC Dial")]
    assert dials[:1] == ['EXEC Dial "PJSIP/203,5"'], dials
    assert not alice.requests("INVITE") and len(carole.requests("INVITE")) == 1
    live.wait_idle()


def test_a_pin_changed_by_phone_opens_the_mailbox_and_the_old_one_does_not(menu_live):
    live = menu_live
    steps = [*PIN,
             Dtmf("0"), Pause(QUESTION_MS),
             Dtmf("5"), Pause(3500),                 # "please enter your new password"
             Dtmf(f"{NEW_PIN}#"), Pause(3500),       # "please re-enter"
             Dtmf(f"{NEW_PIN}#"), Pause(6000),       # "your password has been changed"
             Dtmf("#"), Pause(2500), Dtmf("#"), AwaitHangup(20000)]
    mark = live.ast.mark()
    caller = live.call("*99", steps, via="201", timeout=120)
    assert caller.final_code() == 200
    rx = agi_rx(live.ast.log_since(mark))
    assert any(line.startswith("GET DATA vm-reenterpassword") for line in rx), rx
    assert any(line.startswith("STREAM FILE vm-passchanged") for line in rx), rx
    assert store_entries(live) == [("pin", "phone", "alice")], live.mailcall_log()[-3000:]
    assert NEW_PIN not in live.mailcall_log()

    # The old PIN is refused, the new one opens the mailbox, in the next calls.
    mark = live.ast.mark()
    old = live.call("*99", [Pause(1500), Dtmf("2468#"), Pause(3000), Hangup()], via="201")
    assert old.final_code() == 200
    rx = agi_rx(live.ast.log_since(mark))
    assert any(line.startswith("STREAM FILE auth-incorrect") for line in rx), rx
    live.wait_idle()
    mark = live.ast.mark()
    new = live.call("*99", [Pause(1500), Dtmf(f"{NEW_PIN}#"), Pause(3500), Dtmf("#"),
                            AwaitHangup(20000)], via="201")
    assert new.final_code() == 200
    rx = agi_rx(live.ast.log_since(mark))
    assert not any(line.startswith("STREAM FILE auth-incorrect") for line in rx), rx
    assert 'SET VARIABLE MAILCALL_STATUS "MAILBOX_DONE"' in rx, rx
