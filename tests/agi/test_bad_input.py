"""Whatever arrives ends in a closed connection and one log line, never a crash."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mailcall.agi.server import AgiServer

from .fake_asterisk import Call, run_call
from .harness import ensure_fds, make_runtime, run
from .support import all_traces

ENV = all_traces()[1].env_bytes  # dial-answer's environment


async def _echo(session, runtime):
    await session.verbose("hi")
    return "OK"


async def _with_server(fn, **kwargs):
    server = AgiServer(None, {"dial-answer": _echo}, host="127.0.0.1", port=0, **kwargs)
    await server.start()
    try:
        return await fn(server)
    finally:
        await server.stop(1.0)


async def _send_and_wait_close(server, payload: bytes, *, eof: bool = False,
                               timeout: float = 5.0) -> bytes:
    reader, writer = await asyncio.open_connection(*server.address)
    try:
        if payload:
            writer.write(payload)
        if eof:
            writer.write_eof()
        return await asyncio.wait_for(reader.read(), timeout)  # b"" once the server closed
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


def _session_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("agi session")]


@pytest.mark.parametrize("payload, eof, outcome", [
    (b"\x00\xff garbage \x01\n", False, "PROTOCOL_ERROR"),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False, "PROTOCOL_ERROR"),
    (b"agi_network: yes\n" + b"A" * (1 << 20), False, "PROTOCOL_ERROR"),  # a 1 MB line
    (ENV[:len(ENV) // 2], True, "EOF"),  # no blank line, then EOF
    (b"agi_network: yes\nagi_channel: x\n", False, "PROTOCOL_ERROR"),  # not Asterisk's order
    (b"agi_netw", True, "EOF"),
    (b"", True, "EOF"),
])
def test_bad_input_closes_with_one_log_line(caplog, payload, eof, outcome):
    caplog.set_level(logging.INFO, logger="mailcall.agi")

    async def go(server):
        rest = await _send_and_wait_close(server, payload, eof=eof)
        await asyncio.sleep(0.05)
        assert not server.connections
        return rest

    assert run(_with_server(go)) == b""
    lines = _session_lines(caplog)
    assert len(lines) == 1 and f'outcome="{outcome}"' in lines[0], lines


def test_silent_client_times_out(caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")

    async def go(server):
        return await _send_and_wait_close(server, b"agi_network: yes\n")

    assert run(_with_server(go, env_timeout=0.2)) == b""
    (line,) = _session_lines(caplog)
    assert 'outcome="TIMEOUT"' in line


def test_garbage_reply_mid_session_ends_the_session(caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")

    async def go(server):
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(ENV)
        assert (await reader.readline()).startswith(b"VERBOSE")
        writer.write(b"this is not a reply\n")
        rest = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return rest

    assert run(_with_server(go)) == b""
    (line,) = _session_lines(caplog)
    assert 'outcome="HANGUP"' in line and "protocol error" in line


def test_idle_connections_are_bounded(caplog):
    """Thousands of idle peers: the cap holds, extras are refused, nobody crashes."""
    caplog.set_level(logging.WARNING, logger="mailcall.agi")
    cap, total = 300, 1200
    ensure_fds(2 * total + 100)

    async def go(server):
        conns = []
        for _ in range(total):
            conns.append(await asyncio.open_connection(*server.address))
        for _ in range(100):  # let the server process every accept
            await asyncio.sleep(0.02)
            refused = sum('outcome="REFUSED"' in x for x in _session_lines(caplog))
            if refused == total - cap:
                break
        live = len(server.connections)
        for _, w in conns:
            w.close()
        for _ in range(100):
            await asyncio.sleep(0.02)
            if not server.connections:
                break
        return live, len(server.connections)

    live, after = run(_with_server(go, max_sessions=cap, env_timeout=60))
    assert live == cap
    assert after == 0
    lines = _session_lines(caplog)
    assert sum('outcome="REFUSED"' in x for x in lines) == total - cap
    assert sum('outcome="EOF"' in x for x in lines) == cap
    assert len(lines) == total


def test_thousand_concurrent_sessions(tmp_path):
    ensure_fds(2 * 1000 + 100)
    rt = make_runtime(tmp_path)

    async def go():
        from mailcall.agi.service import collect_handlers
        server = AgiServer(rt, collect_handlers(rt), host="127.0.0.1", port=0)
        await server.start()
        try:
            calls = [Call(args=("201",), dials=["answer"], uniqueid=f"17.{i}") for i in range(1000)]
            return await asyncio.gather(*(run_call(c, *server.address) for c in calls))
        finally:
            await server.stop(1.0)

    done = run(go())
    assert all(c.variables_set.get("MAILCALL_STATUS") == "ANSWERED" for c in done)


def test_graceful_stop_lets_live_calls_finish(tmp_path):
    entered = asyncio.Event()

    async def slow(session, runtime):
        entered.set()
        await asyncio.sleep(0.3)
        await session.set_status("DONE")
        return "DONE"

    async def go():
        server = AgiServer(None, {"slow": slow}, host="127.0.0.1", port=0)
        await server.start()
        address = server.address
        task = asyncio.create_task(run_call(Call(script="slow"), *address))
        await asyncio.wait_for(entered.wait(), 10)
        assert server.running  # the call is live while we stop
        await server.stop(5.0)
        with pytest.raises(OSError):  # no new connection once stopped
            await asyncio.open_connection(*address)
        return await task

    call = run(go())
    assert call.variables_set == {"MAILCALL_STATUS": "DONE"}


def test_stop_cuts_calls_after_grace(caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")

    entered = asyncio.Event()

    async def forever(session, runtime):
        entered.set()
        await asyncio.sleep(60)
        return "NEVER"

    async def go():
        server = AgiServer(None, {"forever": forever}, host="127.0.0.1", port=0)
        await server.start()
        task = asyncio.create_task(run_call(Call(script="forever"), *server.address))
        await asyncio.wait_for(entered.wait(), 10)
        await server.stop(0.2)
        return await task

    call = run(go())
    assert call.commands == []
    assert 'outcome="CANCELLED"' in caplog.text


def test_a_bug_met_while_reading_ends_that_call_only(caplog, monkeypatch):
    """An exception nobody foresaw in the read path: that call ends with its log line and
    the traceback, the connection closes, and the next call is served as usual."""
    from mailcall.agi import server as server_module
    from mailcall.agi.protocol import Connection, State

    class Flawed(Connection):
        __slots__ = ()

        def next_event(self):
            if self.state is State.AWAITING_REPLY and self.buffered and self._buf[:1] == b"9":
                raise ValueError("a bug")
            return super().next_event()

    monkeypatch.setattr(server_module, "Connection", Flawed)
    caplog.set_level(logging.INFO, logger="mailcall.agi")

    async def call(server, reply: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(ENV)
        assert (await reader.readline()).startswith(b"VERBOSE")
        writer.write(reply)
        rest = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return rest

    async def go(server):
        return await call(server, b"999 boom\n"), await call(server, b"200 result=1\n")

    assert run(_with_server(go)) == (b"", b"")
    first, second = _session_lines(caplog)
    assert "internal error: ValueError: a bug" in first
    assert 'outcome="OK"' in second
    (bug,) = [r for r in caplog.records if r.getMessage().startswith("unexpected error reading")]
    assert bug.levelno == logging.ERROR and bug.exc_info is not None
