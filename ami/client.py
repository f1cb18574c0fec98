"""An AMI client that stays connected: login, reconnect with backoff, one answer per action.

The only module of :mod:`mailcall.ami` that touches sockets. It shares the
event loop with the FastAGI server, so nothing here may ever make a call wait:

* every wait is bounded (connect, banner, login, each action, keep-alive Ping);
* reads are parsed as they arrive by :class:`mailcall.ami.protocol.Connection`,
  whose bounds cap memory whatever the peer sends;
* writes never wait: when Asterisk stops reading and the kernel and transport
  buffers hold more than ``max_write_buffer`` bytes, the connection is dropped
  and made again later (Asterisk itself drops a reader that is 100 ms late);
* actions are not queued while disconnected: :meth:`AmiClient.action` fails at
  once with :class:`AmiNotConnected`, and a feature that must deliver state
  (the lamp) keeps its own latest value and sends it from a connect listener.

Failures are logged once per distinct reason, not once per retry, and the
secret is read from its file at each login and never logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from mailcall.core.sansio import NEED_DATA, LocalProtocolError, RemoteProtocolError

from .credentials import CredentialsError, read_secret
from .messages import Banner, ConnectionClosed, Event, Response
from .protocol import Connection

log = logging.getLogger("mailcall.ami")


class AmiError(Exception):
    """An action could not be answered; the message says why."""


class AmiNotConnected(AmiError):
    """No logged-in connection to Asterisk right now."""


class AmiTimeout(AmiError):
    """Asterisk did not answer in time."""


class AmiLoginRefused(AmiError):
    """Asterisk refused the user or the secret."""


EventListener = Callable[[Event], None]
ConnectListener = Callable[[], None]


class _Session:
    """One TCP connection: its protocol machine, transport and waiting actions."""

    def __init__(self, client: AmiClient) -> None:
        self.client = client
        self.conn = Connection(action_prefix=client.action_prefix)
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.banner: asyncio.Future[Banner] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self.waiting: dict[str, asyncio.Future[Response]] = {}
        self.logged_in = False

    def close(self, reason: str) -> None:
        if not self.closed.done():
            self.closed.set_result(reason)
        if self.transport is not None:
            self.transport.abort()
        for fut in self.waiting.values():
            if not fut.done():
                fut.set_exception(AmiNotConnected(f"connection to Asterisk lost: {reason}"))
        self.waiting.clear()
        if not self.banner.done():
            self.banner.set_exception(AmiError(reason))
            self.banner.exception()  # retrieved: no "never retrieved" warning


class _Protocol(asyncio.Protocol):
    def __init__(self, session: _Session) -> None:
        self.session = session

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.session.transport = transport

    def data_received(self, data: bytes) -> None:
        s = self.session
        conn = s.conn
        try:
            conn.receive_data(data)
            while (event := conn.next_event()) is not NEED_DATA:
                s.client._handle(s, event)
        except RemoteProtocolError as exc:
            s.close(f"Asterisk sent something AMI does not allow: {exc}")

    def eof_received(self) -> bool:
        s = self.session
        try:
            s.conn.receive_data(b"")
            while (event := s.conn.next_event()) is not NEED_DATA:
                s.client._handle(s, event)
        except RemoteProtocolError as exc:
            s.close(f"{exc}")
        s.close("Asterisk closed the connection")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.session.close(f"connection lost ({exc})" if exc else "connection closed")


class AmiClient:
    """A logged-in AMI connection, made again whenever it is lost."""

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret_file: str | Path,
        *,
        events: str = "system",
        action_prefix: str = "mailcall",
        connect_timeout: float = 5.0,
        login_timeout: float = 5.0,
        action_timeout: float = 10.0,
        ping_interval: float = 20.0,
        backoff_min: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 10.0,
        max_write_buffer: int = 1024 * 1024,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.secret_file = Path(secret_file)
        self.events = events
        self.action_prefix = action_prefix
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.action_timeout = action_timeout
        self.ping_interval = ping_interval
        self.backoff_min = backoff_min
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        """A session shorter than this does not reset the backoff: a peer that takes the
        login and drops at once would otherwise make every listener (the lamp resends
        every lamp at each login) run back to back."""
        self.max_write_buffer = max_write_buffer
        self.version: str | None = None
        self.logins = 0
        """Successful logins so far (a new value means a new connection)."""
        self._event_listeners: list[EventListener] = []
        self._connect_listeners: list[ConnectListener] = []
        self.logged_in_at: float | None = None
        """Event-loop time of the last successful login (None: never logged in)."""
        self._session: _Session | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._last_problem: str | None = None
        self._file_warnings: set[str] = set()

    @property
    def where(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        s = self._session
        return s is not None and s.logged_in and not s.closed.done()

    def add_event_listener(self, listener: EventListener) -> None:
        """`listener(event)` for every event; it must be quick and not raise."""
        self._event_listeners.append(listener)

    def add_connect_listener(self, listener: ConnectListener) -> None:
        """`listener()` after each successful login (first connection and every reconnect)."""
        self._connect_listeners.append(listener)

    async def start(self) -> None:
        """Start connecting in the background; returns at once (Asterisk may be down)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"ami {self.where}")

    async def wait_connected(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._connected.wait(), timeout)
        except TimeoutError:
            return False
        return self.connected

    async def stop(self) -> None:
        self._stopping = True
        session = self._session
        if session is not None and self.connected:
            with contextlib.suppress(AmiError, LocalProtocolError):
                await self.action("Logoff", timeout=1.0)
        if session is not None:
            session.close("mailcall is stopping")
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def action(self, name: str,
                     fields: Mapping[str, object] | Iterable[tuple[str, object]] = (),
                     *, timeout: float | None = None) -> Response:
        """Send `name` with `fields`; its answer (check ``.ok``), or AmiError.

        Raises :class:`LocalProtocolError` for fields Asterisk would misread
        (CR/LF in a value, a line over 1024 bytes): a bug or bad data, not a
        connection problem.
        """
        session = self._session
        if session is None or session.closed.done() or (
                not session.logged_in and name != "Login"):
            raise AmiNotConnected(f"not connected to Asterisk AMI at {self.where}")
        return await self._send(session, name, fields, timeout)

    async def _send(self, session: _Session, name: str,
                    fields: Mapping[str, object] | Iterable[tuple[str, object]],
                    timeout: float | None) -> Response:
        try:
            action_id, data = session.conn.send_action(name, fields)
        except LocalProtocolError as exc:
            if "already wait" in str(exc):
                raise AmiError(f"AMI at {self.where}: {exc}") from None
            raise
        assert session.transport is not None
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        session.waiting[action_id] = fut
        session.transport.write(data)
        if session.transport.get_write_buffer_size() > self.max_write_buffer:
            session.close(f"Asterisk is not reading what mailcall sends "
                          f"(more than {self.max_write_buffer} bytes waiting)")
        try:
            return await asyncio.wait_for(fut, timeout or self.action_timeout)
        except TimeoutError:
            session.waiting.pop(action_id, None)
            session.conn.abandon(action_id)
            raise AmiTimeout(f"Asterisk AMI at {self.where} did not answer {name} within "
                             f"{timeout or self.action_timeout:g} s") from None

    # ------------------------------------------------------------ internals

    def _handle(self, session: _Session, event: Any) -> None:
        if isinstance(event, Response):
            if event.action == "Login" and event.ok:
                # Before FullyBooted, which may follow in the same read, reaches listeners
                # (and before the connect listeners run, once the login is awaited).
                session.logged_in = True
                self.logged_in_at = asyncio.get_running_loop().time()
            fut = session.waiting.pop(event.action_id, None)
            if fut is not None and not fut.done():
                fut.set_result(event)
        elif isinstance(event, Event):
            if not session.logged_in:
                return
            for listener in self._event_listeners:
                try:
                    listener(event)
                except Exception:
                    log.exception("AMI event listener %r failed on %s", listener, event.name)
        elif isinstance(event, Banner):
            if not session.banner.done():
                session.banner.set_result(event)
        elif isinstance(event, ConnectionClosed):
            session.close("Asterisk closed the connection")

    def _problem(self, text: str) -> None:
        """Log a failure once per distinct reason, then quietly retry."""
        if text != self._last_problem:
            log.warning("AMI %s: %s; retrying with backoff", self.where, text)
            self._last_problem = text
        else:
            log.debug("AMI %s: %s (again)", self.where, text)

    async def _run(self) -> None:
        delay = self.backoff_min
        loop = asyncio.get_running_loop()
        while not self._stopping:
            logged_in = False
            started = loop.time()
            try:
                logged_in = await self._one_session()
            except asyncio.CancelledError:
                raise
            except AmiLoginRefused as exc:
                self._problem(str(exc))
                delay = self.backoff_max  # retrying fast cannot fix a wrong secret
            except CredentialsError as exc:
                self._problem(str(exc))
                delay = self.backoff_max
            except (OSError, AmiError, TimeoutError) as exc:
                self._problem(_reason(exc))
            except Exception as exc:  # a bug must not end reconnecting for good, silently
                log.exception("AMI %s: unexpected error; reconnecting with backoff", self.where)
                self._problem(f"unexpected error: {type(exc).__name__}")
            if self._stopping:
                return
            if logged_in and loop.time() - started >= self.stable_after:
                delay = self.backoff_min
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, self.backoff_max)

    async def _one_session(self) -> bool:
        loop = asyncio.get_running_loop()
        session = _Session(self)
        self._session = session
        try:
            await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(session), self.host, self.port),
                self.connect_timeout)
        except TimeoutError:
            raise AmiError(f"no TCP connection within {self.connect_timeout:g} s") from None
        try:
            try:
                banner = await asyncio.wait_for(session.banner, self.login_timeout)
            except TimeoutError:
                raise AmiError(f"no 'Asterisk Call Manager' banner within "
                               f"{self.login_timeout:g} s (is this port AMI?)") from None
            secret, warnings = read_secret(self.secret_file)
            for warning in warnings:
                if warning not in self._file_warnings:
                    log.warning("AMI: %s", warning)
                    self._file_warnings.add(warning)
            reply = await self._send(session, "Login", {
                "Username": self.username, "Secret": secret.reveal(), "Events": self.events,
            }, self.login_timeout)
            del secret
            if not reply.ok:
                raise AmiLoginRefused(
                    f"Asterisk refused login of AMI user {self.username!r} ({reply.text}): "
                    f"check [{self.username}] in manager.conf (secret, permit, read/write "
                    f"'system,call') against the secret in {self.secret_file}")
            session.logged_in = True
            self.version = banner.version
            self.logins += 1
            if self._last_problem is not None:
                log.info("AMI %s: connected again as %s", self.where, self.username)
            else:
                log.info("AMI %s: connected as %s (Asterisk Call Manager/%s)",
                         self.where, self.username, banner.version)
            self._last_problem = None
            self._connected.set()
            for listener in self._connect_listeners:
                try:
                    listener()
                except Exception:
                    log.exception("AMI connect listener %r failed", listener)
            await self._keep_alive(session)
            return True
        finally:
            self._connected.clear()
            reason = session.closed.result() if session.closed.done() else "closed"
            session.close(reason)
            if session.logged_in and not self._stopping:
                self._problem(f"connection lost: {reason}")

    async def _keep_alive(self, session: _Session) -> None:
        """Wait for the end of the connection, with a Ping now and then to catch a dead peer."""
        while True:
            done, _ = await asyncio.wait({session.closed}, timeout=self.ping_interval)
            if done:
                return
            try:
                await self._send(session, "Ping", (), self.action_timeout)
            except AmiError as exc:
                session.close(f"keep-alive Ping failed: {exc}")
                return


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused (is Asterisk running, with AMI enabled on this port?)"
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc) or type(exc).__name__
