"""The running lamp's control socket: ``mailcall mwi status|sync`` ask the service.

Why a socket: the service holds the ledger (what was read, what Asterisk was
told, what is still due). A command that read and published from its own
process could overwrite a newer lamp with the counts it read a moment before;
asking the service keeps one writer. When nobody answers (``mailcall serve``
not running), the commands count and publish by themselves, and say so.

The wire is one JSON object per line each way: one request, one reply, then
the connection closes. The socket is ``0600`` (the service's own user; root
may always connect): status shows who has messages waiting.

:func:`decode_request` and :func:`encode_reply` are the whole protocol, with
no socket in sight; :class:`ControlListener` and :func:`ask` move the bytes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import unix_listener

log = logging.getLogger("mailcall.mwi")

MAX_REQUEST = 64 * 1024
MAX_REPLY = 256 * 1024 * 1024
"""A status of 100,000 mailboxes is about 15 MB of JSON."""
VERBS = ("status", "sync")
SOCKET_NAME = "mwi-control.sock"


class ControlError(Exception):
    """A request the service cannot take; the message says why."""


@dataclass(frozen=True, slots=True)
class Request:
    verb: str
    users: tuple[str, ...] | None = None
    """For status: these users only (None: everyone watched)."""


def socket_path(control_socket: str | None, spool_dir: str | Path) -> Path:
    """``[lamp] control_socket``, else ``mwi-control.sock`` in the spool (mailcall's own)."""
    return Path(control_socket) if control_socket else Path(spool_dir) / SOCKET_NAME


def encode_request(request: Request) -> bytes:
    body: dict[str, Any] = {"verb": request.verb}
    if request.users is not None:
        body["users"] = list(request.users)
    return json.dumps(body).encode() + b"\n"


def decode_request(line: bytes) -> Request:
    if len(line) > MAX_REQUEST or not line.endswith(b"\n"):
        raise ControlError(f"a request is one line of at most {MAX_REQUEST} bytes")
    try:
        body = json.loads(line)
    except ValueError:
        raise ControlError("a request is a JSON object") from None
    if not isinstance(body, dict) or body.get("verb") not in VERBS:
        raise ControlError(f"unknown request; verbs: {', '.join(VERBS)}")
    users = body.get("users")
    if users is not None and (not isinstance(users, list)
                              or not all(isinstance(u, str) for u in users)):
        raise ControlError("users must be a list of user ids")
    return Request(body["verb"], None if users is None else tuple(users))


def encode_reply(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, separators=(",", ":")).encode() + b"\n"


def decode_reply(line: bytes) -> dict[str, Any]:
    try:
        body = json.loads(line)
    except ValueError:
        raise ControlError("the service's reply is not JSON") from None
    if not isinstance(body, dict):
        raise ControlError("the service's reply is not a JSON object")
    return body


class ControlListener:
    def __init__(self, path: Path,
                 serve: Callable[[Request], Awaitable[dict[str, Any]]], *,
                 max_connections: int = 8) -> None:
        self.path = path
        self.serve = serve
        self.max_connections = max_connections
        self._live = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await unix_listener.listen(
            self.path, self._handle, mode=0o600, backlog=16, what="[lamp] control_socket")

    async def stop(self) -> None:
        await unix_listener.close(self._server, self.path)
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            if self._live >= self.max_connections:
                reply: dict[str, Any] = {"error": "busy: too many mwi commands at once"}
            else:
                self._live += 1
                try:
                    reply = await self._answer(reader)
                finally:
                    self._live -= 1
            writer.write(encode_reply(reply))
            await writer.drain()
        except (ConnectionError, TimeoutError) as exc:
            log.debug("mwi control: connection dropped: %s", exc)
        finally:
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            return await self.serve(decode_request(line))
        except ControlError as exc:
            return {"error": str(exc)}
        except TimeoutError:
            return {"error": "no request within 5 s"}
        except ValueError:  # the line is over the StreamReader's limit
            return {"error": f"a request is one line of at most {MAX_REQUEST} bytes"}
        except Exception as exc:  # the command is told, and the service log has the cause
            log.exception("mwi control: the request failed")
            return {"error": f"the service failed to answer ({type(exc).__name__}); see "
                             f"mailcall serve's log"}


async def ask(path: Path, request: Request, timeout: float) -> dict[str, Any] | None:
    """The running service's reply, or None when no service listens on `path`.

    Raises ControlError when a service is there but the exchange failed (permission,
    timeout, a broken reply): that is not "not running" and must not be taken for it.
    """
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_REPLY)
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    except PermissionError:
        raise ControlError(f"{path}: permission denied; run this as the user mailcall serve "
                           f"runs as, or as root") from None
    try:
        writer.write(encode_request(request))
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise ControlError(f"mailcall serve did not answer on {path} within {timeout:g} s"
                           ) from None
    except (ConnectionError, ValueError) as exc:
        raise ControlError(f"the exchange with mailcall serve on {path} failed: {exc}"
                           ) from None
    finally:
        writer.close()
    if not line:
        raise ControlError(f"mailcall serve closed {path} without answering")
    reply = decode_reply(line)
    if "error" in reply:
        raise ControlError(f"mailcall serve refused: {reply['error']}")
    return reply
