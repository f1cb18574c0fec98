"""One call seen by a handler: the environment, and awaitable AGI commands.

The session is the only object handlers talk to. It sends one command at a
time (the protocol machine enforces it) and hands back the reply; the typed
helpers turn replies into values and raise :class:`AgiHangup` when the channel
is gone, so a handler's happy path reads top to bottom and the hang-up path is
an ``except`` clause. GET VARIABLE still works on a dead channel (the
``hangup-midway`` trace); res_agi.c's command table allows SET VARIABLE there
too, but no trace shows it, so ``set_variable`` reports its reply's success
instead of raising: leaving status variables after a hang-up is attempted,
never relied on.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Callable, Generator
from typing import Any

from . import commands as c
from . import dialplan_variables as dv
from .commands import Command
from .driver import PARKED, Runner
from .environment import Environment
from .protocol import Connection, State
from .replies import (
    DataResult,
    RecordResult,
    Reply,
    StreamResult,
    data_result,
    dial_status,
    record_result,
    stream_result,
)


class AgiError(Exception):
    """A command did not do what the handler asked."""


class AgiHangup(AgiError):
    """The caller's channel is gone (511, or the connection closed)."""


class ConnectionLost(AgiHangup):
    """Asterisk closed the connection or sent something unreadable."""


class AgiCommandFailed(AgiError):
    """Asterisk refused a command (510 unknown, 520 usage, ...)."""

    def __init__(self, command: Command, reply: Reply) -> None:
        super().__init__(f"{command.name or 'command'} failed: {reply.text[:200]}")
        self.reply = reply


class AgiSession:
    """A live FastAGI conversation; created by the server once the environment is in."""

    __slots__ = ("_conn", "_gone", "_loop", "_runner", "_waiter", "_write", "env",
                 "language", "outcome_detail", "peer", "status")

    def __init__(
        self,
        conn: Connection,
        write: Callable[[bytes], None],
        env: Environment,
        peer: str = "",
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._conn = conn
        self._loop = loop or asyncio.get_running_loop()
        self._write = write
        self._waiter: asyncio.Future[Reply] | None = None
        self._runner: Runner | None = None
        """Set by the server: lets replies resume the handler without a Future."""
        self._gone: str | None = None
        """Why the connection ended, once it has."""
        self.env = env
        self.peer = peer
        self.status: str | None = None
        """The last MAILCALL_STATUS this session set (for the log line)."""
        self.language: str | None = None
        """The CHANNEL(language) this session set, None before :meth:`set_language`."""
        self.outcome_detail = ""

    @property
    def hungup(self) -> bool:
        """True once Asterisk said HANGUP or answered 511."""
        return self._conn.hungup

    # ---------------------------------------------------------- server side

    def _deliver(self, reply: Reply) -> None:
        runner = self._runner
        if runner is not None and runner.parked:
            runner.resume(reply, None)
            return
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(reply)

    def _lost(self, why: str) -> None:
        if self._gone is None:
            self._gone = why
        runner = self._runner
        if runner is not None and runner.parked:
            runner.resume(None, ConnectionLost(why))
            return
        waiter = self._waiter
        self._waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionLost(why))

    @types.coroutine
    def _reply(self) -> Generator[Any, Any, Reply]:
        """Wait for the reply: parked when the protocol steps us, else on a Future."""
        runner = self._runner
        if runner is not None and runner.stepping:
            return (yield PARKED)
        waiter = self._loop.create_future()
        self._waiter = waiter
        return (yield from waiter)

    # -------------------------------------------------------------- commands

    async def send(self, command: Command) -> Reply:
        """Send `command`, wait for its reply, whatever its code."""
        conn = self._conn
        if self._gone is not None or conn.state is State.CLOSED or conn.state is State.ERROR:
            raise ConnectionLost(self._gone or "the connection to Asterisk is closed")
        self._write(conn.send(command))
        return await self._reply()

    async def run(self, command: Command) -> Reply:
        """Send `command`; raise AgiHangup on 511 and AgiCommandFailed on any non-200."""
        reply = await self.send(command)
        if reply.code == 200:
            return reply
        if reply.code == 511:
            raise AgiHangup(reply.text)
        raise AgiCommandFailed(command, reply)

    async def answer(self) -> None:
        reply = await self.run(c.answer())
        if reply.result == "-1":
            raise AgiHangup("ANSWER failed: the channel is gone")

    async def hangup(self) -> None:
        await self.send(c.hangup())

    async def get_variable(self, name: str) -> str | None:
        """The variable's value, or None when unset (``200 result=0``)."""
        reply = await self.send(c.get_variable(name))
        if reply.code != 200 or reply.result != "1":
            return None
        return reply.data if reply.data is not None else ""

    async def set_variable(self, name: str, value: str) -> bool:
        reply = await self.send(c.set_variable(name, value))
        return reply.code == 200

    async def set_language(self, language: str) -> None:
        """Make Asterisk play its stock prompts in `language` (``en``, ``fr``).

        ``SET VARIABLE CHANNEL(language) fr``: res_agi hands the name to
        ``pbx_builtin_setvar_helper``, which writes a name ending in ``)``
        through the dialplan function (``ast_func_write``), exactly as
        ``Set(CHANNEL(language)=fr)`` does. Sent once per value: a handler run
        inside another (route ending in voicemail) asks again at no cost.
        Every handler sends it as its first command, before anything that
        acts on the environment (see agi/environment_reader.py).
        """
        if language != self.language:
            self.language = language
            await self.set_variable(dv.LANGUAGE, language)

    async def set_status(self, status: str, **variables: str) -> None:
        """Leave MAILCALL_STATUS and MAILCALL_<NAME> variables for the dialplan.

        One ``SET VARIABLE`` each, status first: the command the recorded
        traces show working (quotes and commas included). ``EXEC MSet`` would
        save round trips but the traces never show it, and mailcall must not
        rely on what they do not show. Also tried after a hang-up, for the
        dialplan's ``h`` extension; a refusal there is ignored.
        """
        self.status = status
        try:
            await self.set_variable(dv.STATUS, status)
            for name, value in variables.items():
                await self.set_variable(dv.left(name), value)
        except ConnectionLost:
            pass  # Asterisk is gone: nobody is left to read the variables.

    async def exec(self, application: str, options: str) -> Reply:
        return await self.run(c.exec_app(application, options))

    async def dial(self, dial_string: str) -> str:
        """EXEC Dial and return the normalised DIALSTATUS (CANCEL if the caller left).

        Nothing is dialled once Asterisk said HANGUP: CANCEL at once.
        """
        if self.hungup:
            return "CANCEL"
        reply = await self.send(c.exec_app("Dial", dial_string))
        if reply.code != 200:
            if reply.code == 511:
                raise AgiHangup(reply.text)
            raise AgiCommandFailed(c.exec_app("Dial", dial_string), reply)
        status = dial_status(await self.get_variable(dv.DIALSTATUS))
        if self.hungup and status != "ANSWER":
            return "CANCEL"
        return status

    async def stream_file(self, name: str, escape_digits: str = "") -> StreamResult:
        """Play `name`; AgiHangup when the caller is gone, before it or during it.

        No prompt is sent once Asterisk said HANGUP. A playback cut short
        (``result=-1`` with ``endpos`` past 0, the ``dtmf`` trace) is the
        caller hanging up too: ast_waitstream returns -1 only when the channel
        hangs up or fails (file.c), and the HANGUP line follows a moment
        later, often after the next command was already on its way. A file
        that does not exist answers ``result=-1 endpos=0`` (``voicemail``
        trace) and is returned as not played.
        """
        if self.hungup:
            raise AgiHangup("caller hung up before the prompt")
        result = stream_result(await self.run(c.stream_file(name, escape_digits)))
        if self.hungup or result.cut:
            raise AgiHangup("caller hung up during playback")
        return result

    async def get_data(self, name: str, timeout_ms: int, max_digits: int) -> DataResult:
        if self.hungup:
            raise AgiHangup("caller hung up before the prompt")
        result = data_result(await self.run(c.get_data(name, timeout_ms, max_digits)))
        if result.hangup or self.hungup:
            raise AgiHangup("caller hung up while typing")
        return result

    async def record_file(
        self,
        path: str,
        fmt: str,
        escape_digits: str,
        timeout_ms: int,
        *,
        beep: bool = True,
        silence_s: int | None = None,
    ) -> RecordResult:
        """RECORD FILE; a hang-up is an outcome here, not an exception (keep the message).

        Not sent once Asterisk said HANGUP: there is nobody left to record (AgiHangup).
        """
        if self.hungup:
            raise AgiHangup("caller hung up before the recording")
        reply = await self.run(
            c.record_file(path, fmt, escape_digits, timeout_ms, beep=beep, silence_s=silence_s)
        )
        return record_result(reply)

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.send(c.verbose(message, level))
