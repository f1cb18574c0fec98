"""When mailcall does not route a call, the dialplan still rings a phone (docs §3, §6).

Issue 10 §2: the old fallback dialled ``${MAILCALL_FALLBACK}${NUMBER}``, so a
call from the trunk to the DID +33140000201 became ``Dial(PJSIP/+33140000201)``:
no such endpoint, the caller got an error and no phone rang. The fallback now
rings, in this order, the number's own ``MAILCALL_FALLBACK_<number>`` from
[globals], ``${MAILCALL_FALLBACK}<number>`` when Asterisk knows that device
(an internal extension), else ``MAILCALL_OPERATOR``; with none of them it logs
what to set. Each case runs with mailcall stopped (AGI cannot connect,
AGISTATUS=FAILURE), with mailcall up but closing the connection at once (over
``max_agi_sessions``: AGISTATUS=SUCCESS with MAILCALL_STATUS empty), and with
mailcall stopping (it no longer listens: AGISTATUS=FAILURE).
"""

from __future__ import annotations

import re
import socket
import time

from tests.support.sipp import Hangup, Pause

from .checks import executed, leave_message

MAPPED = {"MAILCALL_FALLBACK_+33140000201": "PJSIP/201"}


def assert_fell_back_to(live, target: str, agistatus: str) -> None:
    log = live.asterisk_log()
    assert executed(log, "Dial") == [f"{target},20"], executed(log, "Dial")
    assert re.search(rf"WARNING.*mailcall did not route the call on PJSIP/\S+ - "
                     rf"AGISTATUS={agistatus} MAILCALL_STATUS= - ringing {re.escape(target)} "
                     r"for 20 s", log), log[-3000:]


def test_mailcall_down_a_direct_number_rings_the_phone_mapped_to_it(live_factory):
    live = live_factory(mailcall=False, global_vars=MAPPED)
    alice = live.phone("201", "answer")
    caller = live.call("+33140000201", [Pause(1000), Hangup()])
    assert caller.final_code() == 200, caller.received()[-1:]
    assert len(alice.requests("INVITE")) == 1
    assert_fell_back_to(live, "PJSIP/201", "FAILURE")
    assert "Connection refused" in live.asterisk_log()  # res_agi's own warning


def test_mailcall_down_an_extension_rings_its_own_phone(live_factory):
    live = live_factory(mailcall=False)
    alice = live.phone("201", "answer")
    caller = live.call("201", [Pause(1000), Hangup()], via="202")
    assert caller.final_code() == 200
    assert len(alice.requests("INVITE")) == 1
    assert_fell_back_to(live, "PJSIP/201", "FAILURE")


def test_mailcall_down_a_number_without_a_phone_rings_the_operator(live_factory):
    live = live_factory(mailcall=False, global_vars={**MAPPED, "MAILCALL_OPERATOR": "PJSIP/200"})
    operator = live.phone("200", "answer")
    carole = live.phone("203", "answer")
    caller = live.call("+33140000203", [Pause(1000), Hangup()])
    assert caller.final_code() == 200
    assert len(operator.requests("INVITE")) == 1 and not carole.requests("INVITE")
    assert_fell_back_to(live, "PJSIP/200", "FAILURE")


def test_mailcall_down_and_nothing_to_ring_says_what_to_set(live_factory):
    live = live_factory(mailcall=False)
    live.phone("200", "answer")
    caller = live.call("+33140000203", [Pause(1000), Hangup()])
    assert caller.final_code() != 200
    log = live.asterisk_log()
    assert not executed(log, "Dial"), executed(log, "Dial")
    line = re.search(r"(ERROR|WARNING).*mailcall did not route the call on .*", log)
    assert line and "MAILCALL_FALLBACK_+33140000203" in line[0] and \
        "MAILCALL_OPERATOR" in line[0], log[-3000:]


def test_mailcall_over_max_agi_sessions_refuses_and_the_phone_still_rings(live_factory):
    live = live_factory(server={"max_agi_sessions": 1}, global_vars=MAPPED)
    alice = live.phone("201", "answer")
    # One connection that sends nothing holds the only session (for 5 s, the
    # environment timeout), as a stuck call would.
    with socket.create_connection(("127.0.0.1", live.agi_port)):
        time.sleep(0.2)
        caller = live.call("+33140000201", [Pause(1000), Hangup()])
    assert caller.final_code() == 200
    assert len(alice.requests("INVITE")) == 1
    assert_fell_back_to(live, "PJSIP/201", "SUCCESS")
    assert re.search(r'outcome="REFUSED" error="over max_agi_sessions=1"', live.mailcall_log())


def test_mailcall_stopping_takes_no_new_call_and_it_still_rings(live_factory):
    """SIGTERM while a call is in progress: that call goes on to voicemail; mailcall
    no longer listens, so a new call cannot connect (AGISTATUS=FAILURE) and rings
    the phone mapped to its number."""
    live = live_factory(global_vars=MAPPED)
    live.phone("203", "ringout")
    alice = live.phone("201", "answer")
    first = live.call("+33140000203", leave_message(live.media.speech),
                      wait=False)
    live.wait_asterisk_log(r'AGI Rx << EXEC Dial "PJSIP/203,5"')
    live.terminate_mailcall()
    deadline = time.monotonic() + 10
    while "stopping: letting calls" not in live.mailcall_log() and time.monotonic() < deadline:
        time.sleep(0.05)
    second = live.call("+33140000201", [Pause(1000), Hangup()])
    assert second.final_code() == 200
    assert len(alice.requests("INVITE")) == 1
    assert_fell_back_to(live, "PJSIP/201", "FAILURE")
    first.wait(60)
    assert first.final_code() == 200
    assert 'outcome="VOICEMAIL"' in live.mailcall_log()
