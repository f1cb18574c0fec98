"""mailcall stopping during a voicemail: the message is deposited, or its path is logged.

Review finding (issue #3): when the server was stopping and the deposit
failed, the handler re-raised CancelledError without a word about the
recording; and a second cancellation while ``runtime.deposit`` ran (the
server's last wait running out, ``asyncio.run`` tearing the loop down) cut the
deposit off half-way. Both broke "delivered or reported".
"""

from __future__ import annotations

import asyncio
import logging

from mailcall.agi.server import AgiServer
from mailcall.agi.service import collect_handlers

from .fake_asterisk import Call, run_call
from .harness import RecordingDepositor, make_runtime
from .support import MEDIA


class GatedDepositor(RecordingDepositor):
    """Accepts only once the test opens the gate; says when a deposit is waiting there."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__(fail=fail)
        self.waiting: asyncio.Event | None = None
        self.gate: asyncio.Event | None = None
        self.cancelled = 0

    async def accept(self, message) -> str:
        assert self.waiting is not None and self.gate is not None
        self.waiting.set()
        try:
            await self.gate.wait()
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return await super().accept(message)


async def _start(rt):
    server = AgiServer(rt, collect_handlers(rt), host="127.0.0.1", port=0)
    await server.start()
    return server


async def _until_recording(rec_dir) -> None:
    for _ in range(300):
        await asyncio.sleep(0.01)
        if list(rec_dir.glob("*.wav")):
            return
    raise AssertionError("the fake never started recording")


def _stalled_voicemail() -> Call:
    return Call(args=("203",), dials=["busy"], record="stall")


def test_second_cancellation_during_the_deposit_does_not_lose_the_message(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    depositor = GatedDepositor()
    rt = make_runtime(tmp_path, depositor=depositor)

    async def go():
        depositor.waiting, depositor.gate = asyncio.Event(), asyncio.Event()
        server = await _start(rt)
        call = asyncio.create_task(run_call(_stalled_voicemail(), *server.address))
        await _until_recording(tmp_path / "spool" / "rec")
        stopping = asyncio.create_task(server.stop(0.05))  # first cancellation
        await asyncio.wait_for(depositor.waiting.wait(), 5)
        (runner,) = server.running
        runner.cancel()  # a second one while the deposit runs
        await asyncio.sleep(0.05)
        runner.cancel()  # and a third, for good measure
        await asyncio.sleep(0.05)
        assert server.running, "the handler gave up before its deposit was done"
        depositor.gate.set()
        await stopping
        return await call

    call = asyncio.run(go())
    assert depositor.cancelled == 0
    (msg,) = depositor.messages
    assert msg.recording == call.recorded_to[0]
    assert depositor.audio[0] == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert "deposited as it was" in caplog.text
    assert 'outcome="CANCELLED"' in caplog.text  # the cancellation still went through


def test_failed_deposit_while_stopping_logs_the_recording_path(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    rt = make_runtime(tmp_path, depositor=RecordingDepositor(fail=True))

    async def go():
        server = await _start(rt)
        call = asyncio.create_task(run_call(_stalled_voicemail(), *server.address))
        await _until_recording(tmp_path / "spool" / "rec")
        await server.stop(0.05)
        return await call

    call = asyncio.run(go())
    (kept,) = call.recorded_to
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("deposit FAILED" in r.getMessage() and kept in r.getMessage()
               and "forward it to carole" in r.getMessage() for r in errors), caplog.text
    assert (tmp_path / "spool" / "rec" / kept.rsplit("/", 1)[1]).is_file()
    assert 'outcome="CANCELLED"' in caplog.text


def test_loop_torn_down_during_the_deposit_logs_the_recording_path(tmp_path, caplog):
    """``asyncio.run`` returning with the deposit under way cancels the deposit task itself."""
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    depositor = GatedDepositor()
    rt = make_runtime(tmp_path, depositor=depositor)
    seen: dict = {}

    async def go():
        depositor.waiting, depositor.gate = asyncio.Event(), asyncio.Event()
        server = await _start(rt)
        seen["server"] = server
        seen["call"] = Call(args=("203",), dials=["busy"])
        seen["fake"] = asyncio.create_task(run_call(seen["call"], *server.address))
        await asyncio.wait_for(depositor.waiting.wait(), 5)
        # Return now: asyncio.run cancels every task left, the deposit's included.

    try:
        asyncio.run(go())
    finally:
        server = seen.get("server")
        if server is not None and server._server is not None:
            server._server.close()
    assert depositor.cancelled == 1 and depositor.messages == []
    (kept,) = seen["call"].recorded_to
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("INTERRUPTED" in m and kept in m and "mailcall spool list" in m
               for m in errors), caplog.text
    assert (tmp_path / "spool" / "rec" / kept.rsplit("/", 1)[1]).is_file()
