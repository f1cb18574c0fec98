"""A greeting recording that is not saved leaves no temporary file behind, however it ends.

Review finding (issue #3): the temporary WAV was removed only on the normal
path; a lost connection or a cancellation (mailcall stopping) left
``greetings/<user>/.<kind>.tmp-<call>.wav`` forever.
"""

from __future__ import annotations

import asyncio
import logging

from mailcall.agi.server import AgiServer
from mailcall.agi.service import collect_handlers

from .fake_asterisk import Call, run_call
from .harness import make_runtime, run
from .test_handlers import drive

OLD = b"old greeting"


def _old_greeting(tmp_path):
    final = tmp_path / "greetings" / "alice" / "unavailable.wav"
    final.parent.mkdir(parents=True)
    final.write_bytes(OLD)
    return final


def _greeting_call(record: str) -> Call:
    return Call(script="greeting", args=("alice",), get_data=["2468", "1"], record=record)


def test_connection_lost_while_recording_a_greeting_leaves_no_temporary_file(tmp_path):
    rt = make_runtime(tmp_path)
    final = _old_greeting(tmp_path)
    call = drive(rt, _greeting_call("drop"))  # the WAV is written, then the socket closes
    (tmp,) = call.recorded_to
    assert tmp != str(final)
    assert sorted(p.name for p in final.parent.iterdir()) == ["unavailable.wav"]
    assert final.read_bytes() == OLD


def test_server_stopping_while_recording_a_greeting_leaves_no_temporary_file(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    rt = make_runtime(tmp_path)
    final = _old_greeting(tmp_path)

    async def go():
        server = AgiServer(rt, collect_handlers(rt), host="127.0.0.1", port=0)
        await server.start()
        task = asyncio.create_task(run_call(_greeting_call("stall"), *server.address))
        for _ in range(300):
            await asyncio.sleep(0.01)
            if len(list(final.parent.iterdir())) > 1:
                break
        else:
            raise AssertionError("the fake never started recording the greeting")
        await server.stop(0.1)
        return await task

    call = run(go())
    assert call.recorded_to, "RECORD FILE was never sent"
    assert sorted(p.name for p in final.parent.iterdir()) == ["unavailable.wav"]
    assert final.read_bytes() == OLD
    assert 'outcome="CANCELLED"' in caplog.text


def test_hangup_during_greeting_recording_in_the_traced_shape_keeps_the_old_one(tmp_path):
    """voicemail-hangup's shape: ``200 result=-1 (hangup) endpos=18032``, HANGUP comes later."""
    rt = make_runtime(tmp_path)
    final = _old_greeting(tmp_path)
    call = drive(rt, _greeting_call("hangup"))
    assert call.variables_set["MAILCALL_STATUS"] == "GREETING_NOT_SAVED"
    assert sorted(p.name for p in final.parent.iterdir()) == ["unavailable.wav"]
    assert final.read_bytes() == OLD
