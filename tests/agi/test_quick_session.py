"""The benchmarks' driver answers what the faithful one answers (tests/agi/fake_asterisk.py).

``quick_session`` replies from a table made of the recorded replies; a server cannot
tell it from ``run_call`` playing the same call: every command it sends, and so every
decision it made from the replies, is the same.
"""

from __future__ import annotations

from .fake_asterisk import (
    DESK_THEN_MOBILE,
    RECORDED,
    Answers,
    Call,
    desk_then_mobile,
    quick_session,
    run_call,
)
from .harness import make_runtime, serving
from .test_handlers import run


def both(runtime, call: Call) -> tuple[list[str], list[str]]:
    """(commands run_call received, commands quick_session received) for the same call."""
    async def go():
        async with serving(runtime) as server:
            lines: list[bytes] = []
            count = await quick_session(server.address[1], Answers(call), lines=lines)
            assert count == len(lines)
            played = await run_call(call, *server.address)
            return played.commands, [line.decode() for line in lines]
    return run(go())


def test_the_benchmarks_session_is_served_as_run_call_plays_it(tmp_path):
    faithful, quick = both(make_runtime(tmp_path), desk_then_mobile())
    assert quick == faithful
    assert [c for c in quick if c.startswith("EXEC Dial")] == [
        'EXEC Dial "PJSIP/201,20"\n', 'EXEC Dial "PJSIP/+33612345678@trunk,20"\n']
    assert 'SET VARIABLE MAILCALL_STATUS "ANSWERED"\n' in quick  # the mobile's ANSWER was read


def test_each_dial_outcome_is_the_recorded_one(tmp_path):
    # BUSY at the desk skips the mobile for the backup: a table that said NOANSWER would not.
    call = Call(args=("201",), dials=["busy", "answer"])
    faithful, quick = both(make_runtime(tmp_path), call)
    assert quick == faithful
    assert [c for c in quick if c.startswith("EXEC Dial")] == [
        'EXEC Dial "PJSIP/201,20"\n', 'EXEC Dial "PJSIP/202,20"\n']


def test_the_table_holds_the_recorded_replies():
    reply = DESK_THEN_MOBILE.session()
    assert DESK_THEN_MOBILE.env == desk_then_mobile().env_bytes()
    assert reply(b'SET VARIABLE CHANNEL(language) "fr"\n') == "".join(RECORDED.set_ok).encode()
    assert reply(b'EXEC Dial "PJSIP/201,20"\n') == b"200 result=0\n"
    assert reply(b"GET VARIABLE DIALSTATUS\n") == b"200 result=1 (NOANSWER)\n"
    assert reply(b'EXEC Dial "PJSIP/+33612345678@trunk,20"\n') == b"200 result=-1\n"
    assert reply(b"GET VARIABLE DIALSTATUS\n") == b"200 result=1 (ANSWER)\n"
    assert reply(b"GET VARIABLE ANSWEREDTIME\n") == "".join(RECORDED.unset).encode()
    # Each session starts again from the first Dial.
    assert DESK_THEN_MOBILE.session()(b'EXEC Dial "PJSIP/201,20"\n') == b"200 result=0\n"
