"""The IMAP trigger: Dovecot's IMAPSieve runs ``execute "mailcall-mwi"`` on a socket of ours.

When a client sets a flag, copies (moves) or appends a message in the voice
folder, the script of contrib/dovecot/91-mailcall-mwi.conf runs ``execute``
without ``:output`` (a timeout of ``execute :output`` crashes Dovecot 2.3.19,
../shared/dovecot/README.md) and without ``pipe`` (whose ``:try`` loses
mail). Dovecot connects to this socket and speaks the script protocol parsed
by :mod:`mailcall.sieve.script_protocol`; the user is the ``USER`` variable
Dovecot itself sets (never anything from the message).

The answer ``+`` is written as soon as the request is whole, before any
counting: Dovecot waits for it while the IMAP client waits for Dovecot.
The lamp is then recounted in the background (:class:`mailcall.mwi.service`).

A listener of its own rather than a verb of the Sieve bridge
(:mod:`mailcall.sieve.bridge`): the bridge serves LMTP deliveries and has its
own owner; a flood of flag changes must not compete with mail delivery.
Bounded: at most ``max_connections`` at once, each for at most ``timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from pathlib import Path

from mailcall.sieve.script_protocol import (
    NEED_DATA,
    EndOfInput,
    Environment,
    Limits,
    ProtocolError,
    ScriptServerConnection,
    serialize_reply,
)

log = logging.getLogger("mailcall.mwi")

BACKLOG = 1024
"""Dovecot gives up connecting after 5 ms: bursts must queue in the kernel."""
LIMITS = Limits(max_line=2048, max_env=16, max_args=8, max_input=4096)


class TriggerListener:
    """UNIX socket server: each request names a Dovecot user whose lamp may have changed."""

    def __init__(self, path: str | os.PathLike[str], on_user: Callable[[str], None], *,
                 max_connections: int = 256, timeout: float = 2.0) -> None:
        self.path = Path(path)
        self.on_user = on_user
        self.max_connections = max_connections
        self.timeout = timeout
        self.requests = 0
        self._live = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_socket() or self.path.exists():
            if _answers(self.path):
                raise OSError(f"{self.path}: another process already serves this socket "
                              f"(a second mailcall serve?)")
            self.path.unlink()
        self._server = await asyncio.start_unix_server(self._handle, path=str(self.path),
                                                       backlog=BACKLOG)
        # Dovecot's imap processes run as the mail user: the socket must be writable by them.
        os.chmod(self.path, 0o666)  # noqa: S103 - access is controlled by the folder's mode

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._live >= self.max_connections:
            writer.close()
            return
        self._live += 1
        try:
            user = await asyncio.wait_for(self._read(reader), self.timeout)
            writer.write(serialize_reply(user is not None))
            await asyncio.wait_for(writer.drain(), self.timeout)
            if user:
                self.requests += 1
                self.on_user(user)
        except (TimeoutError, ConnectionError, ProtocolError) as exc:
            log.debug("mwi trigger: request dropped: %s", exc)
        finally:
            self._live -= 1
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> str | None:
        conn = ScriptServerConnection(LIMITS)
        user: str | None = None
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                data = await reader.read(4096)
                conn.receive_data(data)
                continue
            if isinstance(event, Environment):
                user = event.get("USER") or None
            elif isinstance(event, EndOfInput):
                return user


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(0.2)
        try:
            s.connect(str(path))
        except OSError:
            return False
        return True
