"""The Sieve bridge: answers Dovecot's ``execute "mailcall" [...]`` on a UNIX socket.

Dovecot connects to ``<base_dir>/<sieve_execute_socket_dir>/mailcall`` instead of
forking a program (see :mod:`mailcall.sieve.script_protocol`), so no process
starts per message. Design rules, from Dovecot 2.3.19's behaviour
(shared/dovecot/README.md):

* Always answer, and answer fast: every request is decided under
  ``answer_timeout`` (default 1 s, far inside ``sieve_execute_exec_timeout``).
  On timeout, bad input or any error the answer is ``-`` (false) — fail open:
  the script goes on and the mail is delivered.
* Notifications are sent *after* the answer, by the :class:`Dispatcher`.
* Dovecot's connect timeout is 5 ms, hence the large listen backlog.
* The socket is bound under a temporary name, given its mode and group, then
  renamed into place: Dovecot never sees a socket it may not open.

Verbs (first argument): ``notify [recipient [sender]]`` decides with
``plan_mail`` and queues Notify actions; ``folder`` answers the folder name of
a FileInto action as output (for ``execute :output``; the generated script
files statically and does not need it); ``ping`` answers ``+``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mailcall.core.mailing import plan_mail
from mailcall.core.plans import FileInto, MailPlan, MailRequest, Notify
from mailcall.core.plugins import announce_decision
from mailcall.core.runtime import Runtime

from .notifications import Dispatcher, MailNotice
from .script_protocol import (
    NEED_DATA,
    Arguments,
    EndOfInput,
    Environment,
    Input,
    Limits,
    ProtocolError,
    ScriptServerConnection,
    serialize_reply,
)

log = logging.getLogger("mailcall.sieve.bridge")

BACKLOG = 4096
DEFAULT_ANSWER_TIMEOUT = 1.0
LIMITS = Limits(max_line=4096, max_env=32, max_args=16, max_input=64 * 1024)
FIELD_LIMIT = 998
"""Longest header value kept (RFC 5322's line limit)."""


@dataclass(frozen=True, slots=True)
class BridgeRequest:
    args: tuple[str, ...]
    env: Environment
    fields: dict[str, str]
    """Header values from the ``key=urlencoded`` lines of the input (first one wins)."""

    @property
    def verb(self) -> str:
        return self.args[0] if self.args else ""


def parse_fields(data: bytes) -> dict[str, str]:
    """``key=value`` lines, values percent-decoded then stripped of control characters."""
    fields: dict[str, str] = {}
    for raw in data.split(b"\n"):
        key, sep, value = raw.partition(b"=")
        if not sep:
            continue
        name = key.decode("ascii", errors="replace").strip().lower()
        if name in fields or len(fields) >= 32:
            continue
        text = unquote(value.decode("ascii", errors="replace"), errors="replace")
        text = " ".join("".join(ch if ch >= " " else " " for ch in text).split())
        fields[name] = text[:FIELD_LIMIT]
    return fields


class _Request:
    """Collects the events of one connection into a :class:`BridgeRequest`."""

    def __init__(self) -> None:
        self.conn = ScriptServerConnection(LIMITS)
        self.env: Environment | None = None
        self.args: Arguments | None = None
        self.data = bytearray()

    def feed(self, data: bytes) -> BridgeRequest | None:
        """Feed bytes (``b""`` at EOF); the request once complete, else None."""
        self.conn.receive_data(data)
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                return None
            if isinstance(event, Environment):
                self.env = event
            elif isinstance(event, Arguments):
                self.args = event
            elif isinstance(event, Input):
                self.data += event.data
            elif isinstance(event, EndOfInput):
                if self.env is None or self.args is None:
                    raise ProtocolError("request ended before its arguments")
                return BridgeRequest(self.args.args, self.env, parse_fields(bytes(self.data)))


class _Connection(asyncio.Protocol):
    """One Dovecot connection. A plain Protocol, not streams: no task per connection,
    which matters at hundreds of deliveries per second on a small machine."""

    def __init__(self, bridge: SieveBridge) -> None:
        self.bridge = bridge
        self.request = _Request()
        self.transport: asyncio.Transport | None = None
        self.answered = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.bridge._open.add(self)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(self.bridge.answer_timeout, self._timed_out)

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def eof_received(self) -> bool:
        self._feed(b"")
        return True  # keep our side open until the answer is written

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.bridge._open.discard(self)

    def _feed(self, data: bytes) -> None:
        if self.answered:
            return
        try:
            request = self.request.feed(data)
            if request is None:
                return
            ok, output, notice = self.bridge.decide(request)
        except ProtocolError as exc:
            log.warning("bad request from Dovecot: %s: answered false", exc)
            self.answer(False)
            return
        except Exception:
            log.exception("Sieve bridge error: answered false (the mail is delivered anyway)")
            self.answer(False)
            return
        self.answer(ok, output)
        if notice is not None:
            self.bridge.dispatcher.submit(notice)

    def _timed_out(self) -> None:
        if not self.answered:
            log.warning("no complete request within %.1fs: answered false",
                        self.bridge.answer_timeout)
            self.answer(False)
        elif self.transport is not None:
            self.transport.abort()  # the peer does not read its answer: give up

    def answer(self, ok: bool, output: bytes = b"") -> None:
        self.answered = True
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(serialize_reply(ok, output))
        transport.close()  # flushes the answer first
        if self.timer is not None:
            self.timer.cancel()
            self.timer = asyncio.get_running_loop().call_later(
                self.bridge.answer_timeout, self._timed_out)


class SieveBridge:
    """A ``mailcall serve`` service: the script-socket server plus its notification dispatcher."""

    name = "sieve-bridge"

    def __init__(self, runtime: Runtime, path: str | os.PathLike[str], *,
                 channels: list[Any] | None = None, answer_timeout: float | None = None,
                 socket_mode: int = 0o660) -> None:
        self.runtime = runtime
        self.path = Path(path)
        self.answer_timeout = answer_timeout or DEFAULT_ANSWER_TIMEOUT
        self.socket_mode = socket_mode
        # One dispatcher per running server, shared with the deposit worker, so that the
        # hourly limit and de-duplication count every notification a user gets.
        shared = runtime.notifier if channels is None else None
        self._owns_dispatcher = shared is None
        if shared is not None:
            self.dispatcher = shared
        else:
            if channels is None:
                channels = [c for batch in runtime.pm.hook.mailcall_notification_channels(
                    runtime=runtime) for c in batch or ()]
            self.dispatcher = Dispatcher(runtime, channels)
        self._server: asyncio.base_events.Server | None = None
        self._inode: int | None = None
        self._open: set[_Connection] = set()

    async def start(self) -> None:
        parent = self.path.parent
        if not parent.is_dir():
            raise OSError(
                f"Sieve socket directory {parent} does not exist: create it (owned by root, "
                "group of the Dovecot mail user, mode 0750) and set sieve_execute_socket_dir "
                "to it; see docs/dovecot.md"
            )
        if self.path.exists() and not stat.S_ISSOCK(self.path.lstat().st_mode):
            raise OSError(f"{self.path} exists and is not a socket: refusing to replace it")
        if self._owns_dispatcher:
            await self.dispatcher.start()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Connection(self), path=str(tmp),
                                                     backlog=BACKLOG)
        # Group of the directory: the admin gives it the group the mail processes run as.
        os.chown(tmp, -1, parent.stat().st_gid)
        os.chmod(tmp, self.socket_mode)
        os.replace(tmp, self.path)
        self._inode = self.path.stat().st_ino
        log.info("Sieve bridge listening on %s", self.path)

    async def stop(self, grace: float) -> None:
        if self._server is not None:
            self._server.close()
            # Remove the socket only if it is still ours (a new instance may have replaced it).
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino == self._inode:
                    self.path.unlink()
            self._server = None
        deadline = asyncio.get_running_loop().time() + grace
        while self._open and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.01)
        if self._owns_dispatcher:
            await self.dispatcher.stop(grace)

    def decide(self, request: BridgeRequest) -> tuple[bool, bytes, MailNotice | None]:
        verb = request.verb
        if verb == "ping":
            return True, b"", None
        if verb not in ("notify", "folder"):
            log.warning("unknown verb %r from Sieve: answered false", verb[:40])
            return False, b"", None
        plan = self.plan(request)
        if verb == "folder":
            folders = [a.folder for a in plan.actions if isinstance(a, FileInto)]
            if not folders:
                return False, b"", None
            return True, folders[0].encode("utf-8"), None
        notifications = tuple(a for a in plan.actions if isinstance(a, Notify))
        if not notifications:
            return True, b"", None
        f = request.fields
        notice = MailNotice(
            notifications=notifications, recipient=plan.request.recipient,
            sender=plan.request.sender, message_id=f.get("message-id", ""),
            subject=f.get("subject", ""), from_header=f.get("from", ""),
            auto_submitted=f.get("auto-submitted", ""), list_id=f.get("list-id", ""),
            precedence=f.get("precedence", ""),
        )
        return True, b"", notice

    def plan(self, request: BridgeRequest) -> MailPlan:
        args, env, f = request.args, request.env, request.fields
        recipient = args[1] if len(args) > 1 else env.get("RECIPIENT")
        sender = args[2] if len(args) > 2 else env.get("SENDER")
        mail = MailRequest(
            recipient=recipient, sender=sender, at=self.runtime.now(),
            context=f.get("context", ""), auto_submitted=f.get("auto-submitted", ""),
            list_id=f.get("list-id", ""), precedence=f.get("precedence", ""),
            subject=f.get("subject", ""),
        )
        plan = plan_mail(self.runtime.policy, mail)
        announce_decision(self.runtime.pm, "mail", mail, plan)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("mail to %s: %s", recipient, "; ".join(plan.explanation))
        return plan
