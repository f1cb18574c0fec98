"""Sockets for :mod:`mailcall.deposit.mail_protocol`: LMTP into Dovecot, or SMTP to an MTA.

``policy.delivery.address`` is ``unix:/path/to/socket`` or ``host:port``
(``[v6addr]:port``); the port defaults to 24 for LMTP and 25 for SMTP.
Anything that goes wrong below the protocol (refused, reset, timeout, DNS) is a
*temporary* failure for every recipient not yet decided: the spool retries it.

``on_delivered`` is awaited the moment a recipient's 2xx arrives, before QUIT
and before anything else is read: the spool writes its "delivered" marker
there, which keeps the crash window between the server's 250 and our record of
it as short as we can make it (see docs/deposit.md, "Exactly once").
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from .mail_protocol import Delivered, Event, Failed, MailTransaction, Reply

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"lmtp": 24, "smtp": 25}


@dataclass(frozen=True, slots=True)
class Target:
    method: str
    """"lmtp" or "smtp"."""
    unix_path: str | None = None
    host: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        where = f"unix:{self.unix_path}" if self.unix_path else f"{self.host}:{self.port}"
        return f"{self.method} {where}"


def parse_target(method: str, address: str) -> Target:
    """``delivery.method`` and ``delivery.address`` from the policy, checked."""
    method = method.lower()
    if method not in DEFAULT_PORTS:
        raise ValueError(f"delivery.method must be 'lmtp' or 'smtp', not {method!r}")
    if address.startswith("unix:"):
        path = address[5:]
        if not path.startswith("/"):
            raise ValueError(f"delivery.address {address!r}: the socket path must be absolute")
        return Target(method, unix_path=path)
    if address.startswith("/"):
        return Target(method, unix_path=address)
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        port = rest.removeprefix(":")
    elif address.count(":") == 1:
        host, port = address.split(":")
    else:  # a name, or a bare IPv6 address: default port
        host, port = address, ""
    if not host:
        raise ValueError(f"delivery.address {address!r}: no host; use 'host:port' or 'unix:/path'")
    try:
        number = int(port) if port else DEFAULT_PORTS[method]
    except ValueError:
        raise ValueError(
            f"delivery.address {address!r}: the port {port!r} is not a number"
        ) from None
    return Target(method, host=host, port=number)


async def deliver(
    target: Target,
    *,
    sender: str,
    recipients: Sequence[str],
    message: bytes,
    on_delivered: Callable[[Delivered], Awaitable[None]] | None = None,
    timeout: float = 120.0,
    hostname: str | None = None,
    stuffed: bool = False,
    setting: str = "policy [delivery] address",
    guide: str = "contrib/delivery/README.md",
) -> list[Event]:
    """Deliver `message` (already dot-stuffed if `stuffed`); one :class:`Delivered` or
    :class:`Failed` per recipient. `setting` and `guide` name the setting that gave
    `target`, and its documentation, for the "cannot connect" text the admin reads."""
    tx = MailTransaction(
        lmtp=target.method == "lmtp",
        hostname=hostname or _hostname(),
        sender=sender,
        recipients=recipients,
        message=message,
        stuffed=stuffed,
    )
    events: list[Event] = []
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            if target.unix_path:
                reader, writer = await asyncio.open_unix_connection(target.unix_path)
            else:
                reader, writer = await asyncio.open_connection(target.host, target.port)
            while not tx.done:
                data = await reader.read(65536)
                if not data:
                    events += tx.connection_lost("the server closed the connection")
                    break
                for event in tx.receive_data(data):
                    events.append(event)
                    if isinstance(event, Delivered) and on_delivered is not None:
                        await on_delivered(event)
                out = tx.data_to_send()
                if out:
                    writer.write(out)
                    await writer.drain()
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as exc:
        stage = "connect" if writer is None else "connection"
        detail = f"{type(exc).__name__}: {exc}".rstrip(": ")
        if writer is None:
            why = (
                f"cannot connect to {target} ({detail}); is the mail server running, and is "
                f"{setting} right? See {guide}"
            )
        else:
            why = f"connection to {target} lost ({detail})"
        # Code 0: a local failure, not a reply from the server; always temporary.
        events += [
            Failed(e.recipient, Reply(0, (why,)), False, stage) for e in tx.connection_lost(why)
        ]
    finally:
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:  # already reset by the peer: nothing left to flush
                pass
    return events


def _hostname() -> str:
    name = socket.getfqdn() or "localhost"
    return name if all(c.isalnum() or c in ".-" for c in name) else "localhost"
