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
A request over that limit is answered ``-`` at once, unread (Dovecot logs that
the execute failed; the IMAP command itself is not affected), and since its
user is unknown the service reconciles everyone once the burst is over
(``on_overflow``): the lamp is late for that one change, never wrong.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path

from mailcall.core.sansio import RemoteProtocolError
from mailcall.sieve.script_protocol import (
    NEED_DATA,
    EndOfInput,
    Environment,
    Limits,
    ScriptServerConnection,
    serialize_reply,
)

from . import unix_listener

log = logging.getLogger("mailcall.mwi")

BACKLOG = 1024
"""Dovecot gives up connecting after 5 ms: bursts must queue in the kernel."""
OVERFLOW_READ = 0.2
"""Seconds a refused trigger may take to hand over its request before it is closed."""
LIMITS = Limits(max_line=2048, max_env=16, max_args=8, max_input=4096)


class TriggerListener:
    """UNIX socket server: each request names a Dovecot user whose lamp may have changed."""

    def __init__(self, path: str | os.PathLike[str], on_user: Callable[[str], None], *,
                 on_overflow: Callable[[], None] | None = None,
                 max_connections: int = 256, timeout: float = 2.0) -> None:
        self.path = Path(path)
        self.on_user = on_user
        self.on_overflow = on_overflow
        self.overflowed = 0
        self.max_connections = max_connections
        self.timeout = timeout
        self.requests = 0
        self._live = 0
        self._told: set[str] = set()
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        # Dovecot's imap processes run as the mail user: the socket must be writable by them;
        # access is controlled by the folder's mode (contrib/dovecot, docs/mwi.md).
        self._server = await unix_listener.listen(self.path, self._handle, mode=0o666,
                                                  backlog=BACKLOG, what="[lamp] trigger_socket")

    async def stop(self) -> None:
        await unix_listener.close(self._server, self.path)
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._live >= self.max_connections:
            self.overflowed += 1
            if self.on_overflow is not None:
                self.on_overflow()
            try:
                writer.write(serialize_reply(False))
                # Take in the request (Dovecot wrote it at once): closing with it unread
                # would reset the connection before Dovecot reads the answer.
                await asyncio.wait_for(reader.read(LIMITS.max_input), OVERFLOW_READ)
            except (TimeoutError, ConnectionError):
                pass
            finally:
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
        except (TimeoutError, ConnectionError, RemoteProtocolError) as exc:
            why = type(exc).__name__
            if why not in self._told:
                # Once per kind: a script or Dovecot version that speaks differently would
                # otherwise stop every IMAP trigger with nothing but DEBUG lines.
                self._told.add(why)
                log.warning("mwi trigger: a request from Dovecot was dropped (%s: %s); "
                            "further ones are logged at DEBUG; check contrib/dovecot/"
                            "mailcall-mwi.sieve is the script IMAPSieve runs", why,
                            exc or "no request within the timeout")
            else:
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

