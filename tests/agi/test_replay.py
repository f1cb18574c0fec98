"""Every recorded trace, replayed byte for byte by a fake Asterisk against the real server.

A test-only handler per trace issues exactly the recorded server lines through
the real session and serializer; the fake Asterisk checks each line byte for
byte and answers with the recorded lines, HANGUP-before-reply and 511 included.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from mailcall.agi.replies import Reply
from mailcall.agi.server import AgiServer

from .fake_asterisk import replay
from .support import Trace, all_traces, tokenize

TRACES = all_traces()


def replay_handler(trace: Trace, seen: dict):
    async def handler(session, runtime):
        replies: list[Reply] = []
        for line in trace.server_lines:
            replies.append(await session.send(tokenize(line)))
        seen[trace.name] = (session, replies, session.hungup)
        return "REPLAYED"
    return handler


async def _replay_all(chunk: int | None):
    seen: dict = {}
    handlers = {t.header["agi_network_script"].partition("?")[0]: replay_handler(t, seen)
                for t in TRACES}
    server = AgiServer(None, handlers, host="127.0.0.1", port=0)
    await server.start()
    try:
        host, port = server.address
        for trace in TRACES:
            await replay(trace, host, port, chunk=chunk)
    finally:
        await server.stop(1.0)
    return seen


@pytest.mark.parametrize("chunk", [None, 1])
def test_every_trace_replays(chunk, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    seen = asyncio.run(_replay_all(chunk))
    assert set(seen) == {t.name for t in TRACES}
    for trace in TRACES:
        _session, replies, _ = seen[trace.name]
        assert len(replies) == len(trace.server_lines)
        expected_codes = []
        answers = [line for d, line in trace.after_env if d == "asterisk" and line != "HANGUP\n"]
        expected_codes = [int(a[:3]) for a in answers[: len(replies)]]
        assert [r.code for r in replies] == expected_codes, trace.name
    basic = seen["basic"][1]
    assert basic[0].data == "+33612345678"
    assert seen["basic"][0].env.query == (("lang", "fr"), ("user", "201"))
    assert seen["basic"][0].env.args == ("first arg", "second arg")
    # HANGUP before the reply: the reply still comes back and the session knows.
    _, vm, vm_hungup = seen["voicemail"]
    assert vm[-1].data == "SUCCESS" and vm_hungup
    _, dtmf, dtmf_hungup = seen["dtmf"]
    assert [r.code for r in dtmf[-2:]] == [511, 511] and dtmf_hungup
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("agi session")]
    assert len(lines) == len(TRACES)
    assert all('outcome="REPLAYED"' in line for line in lines)
    assert any('script="basic"' in line and 'caller="+33612345678"' in line for line in lines)


def test_every_trace_replays_on_uvloop():
    """uvloop's transports are not asyncio.Transport subclasses: the server must not care."""
    import uvloop

    seen = uvloop.run(_replay_all(None))
    assert set(seen) == {t.name for t in TRACES}
