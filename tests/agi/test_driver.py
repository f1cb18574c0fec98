"""Handlers stepped from the protocol (no Task) keep every asyncio behaviour a Task gives."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import types

import pytest

from mailcall.agi.driver import inline, is_inline
from mailcall.agi.server import AgiServer

from .fake_asterisk import Call, run_call
from .harness import run

WHO: contextvars.ContextVar[str] = contextvars.ContextVar("who", default="nobody")


async def _serve(handlers, calls, *, grace=1.0):
    server = AgiServer(None, handlers, host="127.0.0.1", port=0)
    await server.start()
    try:
        return await asyncio.gather(*(run_call(c, *server.address) for c in calls))
    finally:
        await server.stop(grace)


def _session_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("agi session")]


def test_builtin_handlers_are_stepped_inline():
    from mailcall.agi.handlers import fax, greeting, route, voicemail

    assert all(is_inline(h) for h in (fax.handler, greeting.handler, voicemail.handler,
                                      route.make_handler(None)))


def test_inline_handler_falls_back_to_a_task_on_a_foreign_await():
    seen = {}

    @inline
    async def mixed(session, runtime):
        seen["before"] = asyncio.current_task()
        await session.verbose("one")
        await asyncio.sleep(0.01)  # not an AGI reply: a Task takes over from here
        seen["after"] = asyncio.current_task()
        value = await asyncio.get_running_loop().run_in_executor(None, lambda: 42)
        async with asyncio.timeout(5):  # needs a Task: works after the fallback
            await session.verbose("two")
        await session.set_status("DONE", value=str(value))
        return "DONE"

    (call,) = run(_serve({"mixed": mixed}, [Call(script="mixed")]))
    assert seen["before"] is None and seen["after"] is not None
    assert [c.split()[0] for c in call.commands] == ["VERBOSE", "VERBOSE", "SET", "SET"]
    assert call.variables_set == {"MAILCALL_STATUS": "DONE", "MAILCALL_VALUE": "42"}


def test_unmarked_handler_runs_in_a_task_from_the_start():
    async def plain(session, runtime):
        assert asyncio.current_task() is not None
        async with asyncio.timeout(5):
            await session.set_status("DONE")
        return "DONE"

    assert not is_inline(plain)
    (call,) = run(_serve({"plain": plain}, [Call(script="plain")]))
    assert call.variables_set == {"MAILCALL_STATUS": "DONE"}


def test_inline_is_what_inline_marked_not_an_attribute_probed_on_the_handler():
    """is_inline probed an attribute of the handler: an object answering every attribute
    (a proxy, a mock-like wrapper) was taken as marked and stepped without a Task, where
    asyncio.timeout() refuses to run. Only handlers passed to inline() are inline now."""

    class AnswersEverything:
        def __getattr__(self, name):
            return True

        async def __call__(self, session, runtime):
            async with asyncio.timeout(5):
                await session.set_status("DONE")
            return "DONE"

    handler = AnswersEverything()
    assert not is_inline(handler) and not is_inline([]) and not is_inline(None)
    (call,) = run(_serve({"proxy": handler}, [Call(script="proxy")]))
    assert call.variables_set == {"MAILCALL_STATUS": "DONE"}
    assert is_inline(inline(AnswersEverything()))


def test_inline_handler_failure_sets_error_status(caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")

    @inline
    async def broken(session, runtime):
        await session.verbose("about to fail")
        raise ValueError("bug in a handler")

    (call,) = run(_serve({"broken": broken}, [Call(script="broken")]))
    assert call.variables_set == {"MAILCALL_STATUS": "ERROR"}
    (line,) = _session_lines(caplog)
    assert 'outcome="ERROR"' in line and "ValueError: bug in a handler" in line


def test_each_inline_session_has_its_own_context():
    @inline
    async def tag(session, runtime):
        WHO.set(session.env.uniqueid)
        await session.verbose("x")
        await session.verbose("y")
        await session.set_status("DONE", who=WHO.get())
        return "DONE"

    calls = [Call(script="tag", uniqueid=f"1.{i}") for i in range(20)]
    done = run(_serve({"tag": tag}, calls))
    assert [c.variables_set["MAILCALL_WHO"] for c in done] == [f"1.{i}" for i in range(20)]
    assert WHO.get() == "nobody"  # nothing leaked into the loop's context


def test_stop_cancels_an_inline_handler_parked_on_a_blocking_command(caplog):
    """Dial or RECORD FILE can block for minutes: after the grace period the handler
    gets CancelledError where it waits, and can still finish its cleanup."""
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    cleaned = []

    @inline
    async def blocking(session, runtime):
        try:
            await session.exec("Wait", "600")
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)  # e.g. a deposit: needs a Task, gets one
            cleaned.append(session.env.uniqueid)
            raise
        return "NEVER"

    async def go():
        server = AgiServer(None, {"blocking": blocking}, host="127.0.0.1", port=0)
        await server.start()
        reader, writer = await asyncio.open_connection(*server.address)
        writer.write(Call(script="blocking", uniqueid="9.9").env_bytes())
        line = await reader.readline()  # the command; Asterisk never answers it
        assert server.running
        await server.stop(0.1)
        rest = await asyncio.wait_for(reader.read(), 5)
        writer.close()
        return line, rest, server.running

    line, rest, running = run(go())
    assert line.startswith(b"EXEC Wait")
    assert rest == b"" and not running
    assert cleaned == ["9.9"]
    (session_line,) = _session_lines(caplog)
    assert 'outcome="CANCELLED"' in session_line


def test_connection_lost_while_parked_is_a_hangup(caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")

    @inline
    async def waits(session, runtime):
        await session.exec("Wait", "600")
        return "NEVER"

    async def go():
        server = AgiServer(None, {"waits": waits}, host="127.0.0.1", port=0)
        await server.start()
        try:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(Call(script="waits").env_bytes())
            await reader.readline()
            writer.close()
            for _ in range(100):
                if not server.running:
                    break
                await asyncio.sleep(0.01)
            return server.running
        finally:
            await server.stop(1.0)

    assert not run(go())
    (line,) = _session_lines(caplog)
    assert 'outcome="HANGUP"' in line


@pytest.mark.parametrize("stepped", [True, False])
def test_many_sessions_either_way(stepped):
    async def both(session, runtime):
        status = await session.dial("PJSIP/201,20")
        await session.set_status("DONE", result=status)
        return "DONE"

    handler = inline(both) if stepped else both
    calls = [Call(script="both", dials=["answer"], uniqueid=f"2.{i}") for i in range(50)]
    done = run(_serve({"both": handler}, calls))
    assert all(c.variables_set == {"MAILCALL_STATUS": "DONE", "MAILCALL_RESULT": "ANSWER"}
               for c in done)


def test_cancel_while_a_reply_is_being_delivered_throws_instead():
    """stop() can cancel between the reply's arrival and the step that delivers it."""
    from mailcall.agi.driver import PARKED, Runner

    @types.coroutine
    def park():
        return (yield PARKED)

    got = []

    async def handler():
        try:
            got.append(await park())
            await park()
        except asyncio.CancelledError:
            got.append("cancelled")
            raise

    async def go():
        ended = []
        runner = Runner(asyncio.get_running_loop(), handler(), ended.append)
        runner.start(True)
        assert runner.parked
        runner.resume("reply 1", None)
        await asyncio.sleep(0)
        assert got == ["reply 1"] and runner.parked
        runner.resume("reply 2", None)
        runner.cancel()  # the reply is queued, not delivered yet
        await asyncio.sleep(0)
        return ended

    assert run(go()) and got == ["reply 1", "cancelled"]
