"""The FastAGI listener: sockets, timeouts, the session cap and shutdown.

The only module here that touches sockets. It is an asyncio protocol
rather than streams because a FastAGI server's cost per call is almost all
per-line overhead: the protocol machine (``protocol.py``) is fed straight from
the read callback, and built-in handlers are stepped without a Task or a
Future per command (``driver.py``).

Reads go into one buffer owned by the server (``asyncio.BufferedProtocol``).
With a plain ``Protocol`` the stdlib loop allocates 256 KiB for every
``recv`` and shrinks it to the few bytes of a reply; glibc serves that with
``mmap``, ``mremap`` and ``munmap`` each time, three system calls and two page
faults per reply line, which was a third of the server's CPU per call
(``strace -c``, docs/asterisk.md §10). The buffer can be shared because the
loop calls ``get_buffer``, ``recv_into`` and ``buffer_updated`` back to back
for one connection, and ``buffer_updated`` copies the bytes out at once.

Why these limits:

* backlog 2048 (at least 1024): Asterisk gives up connecting after 2 s and the
  call then continues with AGISTATUS=FAILURE, so bursts must queue in the
  kernel, not be refused;
* a timeout on the environment block only: after it, commands such as Dial or
  RECORD FILE legitimately block for minutes;
* a cap on live connections (``max_agi_sessions``): beyond it a new connection
  is closed at once with a log line, so idle or hostile peers cannot grow
  memory without bound;
* graceful stop: the listener closes, live calls run to their end for up to
  `grace` seconds, then are cut.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .commands import DEFAULT_LINE_LIMIT, CommandError
from .driver import Runner, is_inline
from .protocol import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    EnvironmentReceived,
    LocalProtocolError,
    RemoteProtocolError,
)
from .replies import Reply
from .session import AgiHangup, AgiSession

Handler = Callable[[AgiSession, Any], Awaitable[str]]

log = logging.getLogger("mailcall.agi")

DEFAULT_ENV_TIMEOUT = 5.0
BACKLOG = 2048
READ_BUFFER = 16384
"""Bytes read per ``recv_into``: a reply line of the longest length accepted fits
in one read (``MAX_LINE``); a rare larger environment block takes a few reads."""


_PLAIN = re.compile(r"[A-Za-z0-9_.:;@+/ -]*").fullmatch


def _quoted(value: Any) -> str:
    if isinstance(value, str):
        # JSON quoting: a caller ID cannot forge a second field or a second line.
        return f'"{value}"' if _PLAIN(value) else json.dumps(value, ensure_ascii=True)
    return str(value)


def log_session(logger: logging.Logger, level: int, fields: dict[str, Any]) -> None:
    """One line per session: ``agi session key="json-quoted value" ...`` (no injection).

    The record is made and handled directly: ``Logger.log`` would also walk the
    stack to find the caller (``findCaller``), a fixed cost per session for a
    location that is always this function.
    """
    if logger.isEnabledFor(level):
        text = " ".join([f"{k}={_quoted(v)}" for k, v in fields.items()])
        logger.handle(logger.makeRecord(
            logger.name, level, __file__, 0, "agi session %s", (text,), None,
            "log_session", {"agi": fields},
        ))


class _AgiProtocol(asyncio.BufferedProtocol):
    __slots__ = (
        "closed",
        "conn",
        "error",
        "peer",
        "pending",
        "server",
        "session",
        "started",
        "transport",
    )

    def __init__(self, server: AgiServer) -> None:
        self.server = server
        self.conn = Connection(line_limit=server.line_limit)
        self.transport: asyncio.Transport | None = None
        self.session: AgiSession | None = None
        self.pending: AgiSession | None = None
        """A session whose environment is in, started once what came with it is read."""
        self.peer = ""
        self.started = time.monotonic()
        self.closed = False
        self.error = ""

    # -------------------------------------------------------- connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = transport  # type: ignore[assignment]
        server = self.server
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer or "")
        if len(server.connections) >= server.max_sessions or server.stopping:
            why = "stopping" if server.stopping else f"over max_agi_sessions={server.max_sessions}"
            self.closed = True
            transport.abort()
            log_session(log, logging.WARNING, {"peer": self.peer, "outcome": "REFUSED",
                                               "error": why})
            return
        server.connections.add(self)
        server.waiting[self] = None  # insertion order = age: see AgiServer._sweep

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.conn.receive_data(self.server.read_buffer[:nbytes])
        self._drain()

    def data_received(self, data: bytes) -> None:
        """The same as a read into the buffer (for callers that hold bytes, e.g. tests)."""
        self.conn.receive_data(data)
        self._drain()

    def eof_received(self) -> bool:
        self.conn.receive_data(b"")
        self._drain()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self._cancel_timer()
        if self.session is not None:
            self.session._lost("connection closed by Asterisk")
        elif not self.closed:
            self._finish_early("EOF", self.error or "connection closed before the environment")
        self.closed = True

    # ------------------------------------------------------------ events

    def _drain(self) -> None:
        conn = self.conn
        try:
            while True:
                event = conn.next_event()
                if event is NEED_DATA:
                    if self.pending is not None:
                        self._start_pending()
                    return
                if isinstance(event, Reply):
                    if self.session is not None:
                        self.session._deliver(event)
                    if not conn.buffered and not conn.peer_closed:
                        return  # the usual case: one reply per read
                elif isinstance(event, EnvironmentReceived):
                    self._cancel_timer()
                    # Not started yet: whatever arrived with the block is read first. If a
                    # caller's value forged the block's end, the real rest is in this read
                    # (Asterisk writes the whole block before reading a command), and the
                    # call is refused before the handler sends anything (protocol.py).
                    self.pending = AgiSession(
                        conn, self.transport.write, event.environment,  # type: ignore[union-attr]
                        self.peer, self.server.loop,
                    )
                elif isinstance(event, ConnectionClosed):
                    if self.pending is not None:
                        self._start_pending()
                    if self.session is not None:
                        self.session._lost("Asterisk closed the connection")
                    return
                # Trying and HangupNotice only change the machine's state.
        except RemoteProtocolError as exc:
            self._protocol_error(str(exc))
        except Exception as exc:
            # A bug on this side, met with input nobody foresaw: the call ends
            # like one with bad input (closed, one log line), the server lives on.
            log.exception("unexpected error reading from Asterisk (peer %s)", self.peer)
            self._protocol_error(f"internal error: {type(exc).__name__}: {exc}")

    def _start_pending(self) -> None:
        session, self.pending = self.pending, None
        self.session = session
        self.server._begin(self, session)  # type: ignore[arg-type]

    def _protocol_error(self, error: str) -> None:
        self.error = error
        self.pending = None
        if self.session is not None:
            self.session._lost(f"protocol error: {error}")
            self._close()
        else:
            self._finish_early("EOF" if self.conn.peer_closed else "PROTOCOL_ERROR", error)

    def _env_timeout(self) -> None:
        if self.session is None and not self.closed:
            self._finish_early(
                "TIMEOUT",
                f"no complete environment block within {self.server.env_timeout:g} s",
            )

    def _cancel_timer(self) -> None:
        self.server.waiting.pop(self, None)

    def _finish_early(self, outcome: str, error: str) -> None:
        """End a connection that never became a session, with its one log line."""
        if self.closed:
            return
        self._close(abort=True)
        log_session(log, logging.WARNING, {
            "peer": self.peer, "outcome": outcome, "error": error,
            "duration_ms": round((time.monotonic() - self.started) * 1000, 1),
        })

    def _close(self, abort: bool = False) -> None:
        self._cancel_timer()
        if not self.closed:
            self.closed = True
            self.server.connections.discard(self)
            if self.transport is not None:
                if abort:
                    self.transport.abort()
                else:
                    self.transport.close()


class AgiServer:
    """Listens for Asterisk and runs one handler per connection."""

    def __init__(
        self,
        runtime: Any,
        handlers: Mapping[str, Handler],
        *,
        host: str = "127.0.0.1",
        port: int = 4573,
        max_sessions: int = 2000,
        env_timeout: float = DEFAULT_ENV_TIMEOUT,
        line_limit: int = DEFAULT_LINE_LIMIT,
        backlog: int = BACKLOG,
    ) -> None:
        self.runtime = runtime
        self.handlers = dict(handlers)
        self.host = host
        self.port = port
        self.max_sessions = max_sessions
        self.env_timeout = env_timeout
        self.line_limit = line_limit
        self.backlog = max(backlog, 1024)
        self.connections: set[_AgiProtocol] = set()
        self.waiting: dict[_AgiProtocol, None] = {}
        """Connections still sending their environment, oldest first."""
        self._sweeper: asyncio.TimerHandle | None = None
        self.running: set[Runner] = set()
        """Sessions whose handler has not returned yet (stepped inline or in a Task)."""
        self._drained: asyncio.Future[None] | None = None
        self.stopping = False
        self._server: asyncio.AbstractServer | None = None
        self.loop: asyncio.AbstractEventLoop = None  # type: ignore[assignment]
        self.read_buffer = memoryview(bytearray(READ_BUFFER))
        """Shared by every connection: see the module docstring."""

    @property
    def address(self) -> tuple[str, int]:
        """The bound address (useful with port 0)."""
        assert self._server is not None
        return self._server.sockets[0].getsockname()[:2]

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self._server = await self.loop.create_server(
            lambda: _AgiProtocol(self), self.host, self.port, backlog=self.backlog,
            reuse_address=True,
        )
        self._sweep()
        log.info("FastAGI listening on %s:%d (%d scripts: %s)", *self.address,
                 len(self.handlers), ", ".join(sorted(self.handlers)))

    def _sweep(self) -> None:
        """Time out silent peers: one periodic timer instead of one timer per connection."""
        deadline = time.monotonic() - self.env_timeout
        for proto in list(self.waiting):
            if proto.started > deadline:
                break  # the rest connected later
            proto._env_timeout()
            self.waiting.pop(proto, None)
        self._sweeper = self.loop.call_later(min(1.0, self.env_timeout / 4), self._sweep)

    async def stop(self, grace: float) -> None:
        """Stop listening, let live calls finish for `grace` seconds, then cut them."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._server is not None:
            self._server.close()
        for proto in list(self.connections):
            if proto.session is None:
                proto._finish_early("SHUTDOWN", "server stopping before the environment arrived")
        if self.running and not await self._drain_within(grace):
            for runner in list(self.running):
                runner.cancel()
            # Cancelled handlers still deposit what they recorded: give them a moment.
            await self._drain_within(5.0)
        for proto in list(self.connections):
            proto._close(abort=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def _drain_within(self, seconds: float) -> bool:
        """Wait until no handler runs any more, at most `seconds`; True if none does."""
        if self.running:
            self._drained = self.loop.create_future()
            await asyncio.wait({self._drained}, timeout=max(seconds, 0))
            self._drained = None
        return not self.running

    def _begin(self, proto: _AgiProtocol, session: AgiSession) -> None:
        """Start the handler: stepped from the read callback if it allows it, else as a Task."""
        handler = self.handlers.get(session.env.script)
        runner = Runner(self.loop, self._run(proto, session, handler), self._ended)
        session._runner = runner
        self.running.add(runner)
        runner.start(handler is None or is_inline(handler))

    def _ended(self, runner: Runner) -> None:
        self.running.discard(runner)
        drained = self._drained
        if drained is not None and not self.running and not drained.done():
            drained.set_result(None)

    async def _run(self, proto: _AgiProtocol, session: AgiSession, handler: Handler | None) -> None:
        env = session.env
        outcome = "ERROR"
        level = logging.INFO
        error = ""
        try:
            if handler is None:
                outcome = "UNKNOWN_SCRIPT"
                level = logging.WARNING
                error = f"no handler for script {env.script!r}; known: {sorted(self.handlers)}"
                await session.set_status("UNKNOWN_SCRIPT")
            else:
                outcome = str(await handler(session, self.runtime))
        except AgiHangup as exc:
            outcome = "HANGUP"
            error = str(exc)
        except asyncio.CancelledError:
            outcome = "CANCELLED"
            error = "server stopped before the call ended"
            raise
        except Exception as exc:
            outcome = "ERROR"
            level = logging.ERROR
            error = f"{type(exc).__name__}: {exc}"
            log.exception("AGI handler %r failed on channel %s", env.script, env.channel)
            await _try_set_error(session)
        finally:
            proto._close()
            if log.isEnabledFor(level):
                fields: dict[str, Any] = {
                    "script": env.script, "channel": env.channel, "caller": env.callerid,
                    "uniqueid": env.uniqueid, "outcome": outcome,
                    "duration_ms": round((time.monotonic() - proto.started) * 1000, 1),
                }
                if session.status:
                    fields["status"] = session.status
                if error:
                    fields["error"] = error
                log_session(log, level, fields)


async def _try_set_error(session: AgiSession) -> None:
    try:
        await session.set_status("ERROR")
    except (AgiHangup, LocalProtocolError, CommandError):
        pass
