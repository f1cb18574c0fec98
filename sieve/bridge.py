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
``plan_mail`` and queues Notify actions; ``deposit [recipient]`` answers ``+``
only for a voicemail or fax mailcall itself deposited, proven by its
``Mailcall-Deposit`` token (:mod:`mailcall.deposit.seal`: authentic, and made
within the duplicate window, so a replayed copy is refused), and logs why
anything else is not one; ``folder`` answers the folder name of a proven
deposit as output (for ``execute :output`` in custom scripts; the generated
script files statically and does not need it); ``ping`` answers ``+``.

Header values arrive URL-encoded and are decoded, then cleaned by the
project's one rule for outside text (:func:`mailcall.core.text.display_text`)
before anything shows or logs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mailcall.core.decisions.mailing import plan_mail
from mailcall.core.decisions.plans import FileInto, MailPlan, MailRequest, Notify
from mailcall.core.errors import ServiceStartError
from mailcall.core.host.plugin_manager import announce_decision
from mailcall.core.host.runtime import Runtime
from mailcall.core.text import display_text
from mailcall.deposit.seal import SEAL_HEADER, DepositKeyError, delivery_problem, deposit_key
from mailcall.notifications import Dispatcher, MailNotice, queue_path

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
READ_SIZE = 65536
FIELD_LIMIT = 998
"""Longest header value kept (RFC 5322's line limit)."""
PHONE_CONTEXTS = ("voice-message", "fax-message")


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
    """``key=value`` lines, values percent-decoded then cleaned as outside text."""
    fields: dict[str, str] = {}
    for raw in data.split(b"\n"):
        key, sep, value = raw.partition(b"=")
        if not sep:
            continue
        name = key.decode("ascii", errors="replace").strip().lower()
        if name in fields or len(fields) >= 32:
            continue
        text = value.decode("ascii", errors="replace")
        if "%" in text:
            text = unquote(text, errors="replace")
        fields[name] = display_text(text, FIELD_LIMIT)
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


class _Connection:
    """One Dovecot connection, on a raw non-blocking socket.

    Not an ``asyncio.Protocol``: asyncio's server spends a task, a transport
    and three event-loop turns per accepted connection before the first byte
    is read, which at hundreds of deliveries per second costs the daemon more
    CPU than deciding does. Here the request is often read and answered in
    the very turn that accepts it (Dovecot writes its whole request and shuts
    its side down straight after connecting), with one ``send`` and one
    ``close``; otherwise the socket waits in the loop's reader set. One
    periodic sweep (:meth:`SieveBridge._sweep`) enforces every deadline
    instead of a timer per connection.
    """

    __slots__ = ("answered", "bridge", "closed", "deadline", "eof", "fd", "pending", "reading",
                 "request", "sock", "writing")

    def __init__(self, bridge: SieveBridge, sock: socket.socket, deadline: float) -> None:
        self.bridge = bridge
        self.sock = sock
        self.fd = sock.fileno()
        self.deadline = deadline
        self.request = _Request()
        self.answered = False
        self.eof = False
        self.pending = b""
        """Part of the answer the socket did not take at once (never in practice: it is tiny)."""
        self.reading = self.writing = self.closed = False

    def wait_readable(self) -> None:
        self.reading = True
        self.bridge.loop.add_reader(self.fd, self.readable)

    def readable(self) -> None:
        while True:
            try:
                data = self.sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if not self.answered:
                    log.warning("Dovecot connection failed before its request was complete: %s",
                                exc)
                self.close()
                return
            if not data:
                self.eof = True
            if not self.answered:
                self._feed(data)
            if self.eof or self.closed:
                if self.answered and not self.pending:
                    self.close()
                return

    def _feed(self, data: bytes) -> None:
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

    def answer(self, ok: bool, output: bytes = b"") -> None:
        """Send the verdict, then say we are done (our EOF ends Dovecot's read)."""
        self.answered = True
        self.deadline = self.bridge.loop_time() + self.bridge.answer_timeout
        self.pending = serialize_reply(ok, output)
        self._flush()

    def _flush(self) -> None:
        loop = self.bridge.loop
        try:
            sent = self.sock.send(self.pending)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            log.warning("could not answer Dovecot: %s", exc)
            self.close()
            return
        self.pending = self.pending[sent:]
        if self.pending:
            if not self.writing:
                self.writing = True
                loop.add_writer(self.fd, self._flush)
            return
        if self.writing:
            self.writing = False
            loop.remove_writer(self.fd)
        if self.eof:
            self.close()
        else:
            # Request cut short (bad input, timeout): read the rest and discard it, so that
            # closing with unread bytes does not turn our answer into ECONNRESET for Dovecot.
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_WR)

    def expire(self) -> None:
        if not self.answered:
            log.warning("no complete request within %.1fs: answered false",
                        self.bridge.answer_timeout)
            self.answer(False)
        else:
            self.close()  # the peer neither reads its answer nor ends its request: give up

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.bridge.loop
        if self.reading:
            loop.remove_reader(self.fd)
        if self.writing:
            loop.remove_writer(self.fd)
        self.bridge._open.pop(self.fd, None)
        self.sock.close()


class SieveBridge:
    """A ``mailcall serve`` service: the script-socket server plus its notification dispatcher."""

    name = "sieve-bridge"

    def __init__(self, runtime: Runtime, path: str | os.PathLike[str], *,
                 channels: list[Any] | None = None, answer_timeout: float | None = None,
                 socket_mode: int = 0o660, spool_dir: str | os.PathLike[str] | None = None) -> None:
        self.runtime = runtime
        self.path = Path(path)
        self.spool_dir = Path(spool_dir or runtime.setting("spool_dir"))
        """Where the deposit key is (the key the deposit builder seals messages with)."""
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
            self.dispatcher = Dispatcher(runtime, channels,
                                         path=queue_path(runtime.setting("spool_dir")))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listener: socket.socket | None = None
        self._inode: int | None = None
        self._open: dict[int, _Connection] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        # Deadlines are checked every `_tick`, so a request is cut off between
        # answer_timeout - tick and answer_timeout after its connection: never later.
        self._tick = min(0.1, self.answer_timeout / 4)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "bridge not started"
        return self._loop

    def loop_time(self) -> float:
        return self.loop.time()

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
        if self.path.exists() and _answers(self.path):
            raise ServiceStartError(
                f"another process (another 'mailcall serve'?) is listening on the Sieve socket "
                f"{self.path}: stop it first (systemctl stop mailcall), or give this one its "
                "own [sieve] socket. A socket left by a crashed mailcall does not answer and "
                "is replaced.")
        try:  # created here on the very first start; unusable: say so now, not per mail
            deposit_key(self.spool_dir)
        except DepositKeyError as exc:
            raise ServiceStartError(f"Sieve bridge: {exc}") from None
        if self._owns_dispatcher:
            await self.dispatcher.start()
        self._loop = asyncio.get_running_loop()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(tmp))
            listener.listen(BACKLOG)
            listener.setblocking(False)
            # Group of the directory: the admin gives it the group the mail processes run as.
            os.chown(tmp, -1, parent.stat().st_gid)
            os.chmod(tmp, self.socket_mode)
            os.replace(tmp, self.path)
        except BaseException:
            listener.close()
            tmp.unlink(missing_ok=True)
            raise
        self._listener = listener
        self._inode = self.path.stat().st_ino
        self._loop.add_reader(listener.fileno(), self._accept)
        log.info("Sieve bridge listening on %s", self.path)

    def _accept(self) -> None:
        listener, loop = self._listener, self.loop
        if listener is None:
            return
        now = loop.time()
        for _ in range(BACKLOG):
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                break
            except OSError as exc:
                # Out of file descriptors, typically: pause accepting rather than spin.
                log.error("cannot accept Dovecot connections on %s: %s (retrying in 1s; "
                          "deliveries meanwhile go on without notifications)", self.path, exc)
                loop.remove_reader(listener.fileno())
                loop.call_later(1.0, self._resume_accept)
                break
            sock.setblocking(False)
            conn = _Connection(self, sock, now + self.answer_timeout - self._tick)
            self._open[conn.fd] = conn
            conn.readable()  # usually the whole request is already there
            if not conn.closed:  # request incomplete, or its tail still to drain
                conn.wait_readable()
        if self._open and self._sweeper is None:
            self._sweeper = loop.call_later(self._tick, self._sweep)

    def _resume_accept(self) -> None:
        if self._listener is not None:
            self.loop.add_reader(self._listener.fileno(), self._accept)

    def _sweep(self) -> None:
        """One timer for every open connection, instead of one per connection."""
        self._sweeper = None
        now = self.loop.time()
        for conn in [c for c in self._open.values() if c.deadline <= now]:
            conn.expire()
        if self._open:
            self._sweeper = self.loop.call_later(self._tick, self._sweep)

    async def stop(self, grace: float) -> None:
        if self._listener is not None:
            self.loop.remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
            # Remove the socket only if it is still ours (a new instance may have replaced it).
            with contextlib.suppress(OSError):
                if self.path.stat().st_ino == self._inode:
                    self.path.unlink()
        if self._loop is not None:
            deadline = self._loop.time() + grace
            while self._open and self._loop.time() < deadline:
                await asyncio.sleep(0.01)
            for conn in list(self._open.values()):
                if not conn.answered:
                    log.warning("stopping: answered false to a request still incomplete")
                    conn.answer(False)
                conn.close()
            if self._sweeper is not None:
                self._sweeper.cancel()
                self._sweeper = None
        if self._owns_dispatcher:
            await self.dispatcher.stop(grace)

    def decide(self, request: BridgeRequest) -> tuple[bool, bytes, MailNotice | None]:
        verb = request.verb
        if verb == "ping":
            return True, b"", None
        if verb == "deposit":
            return self.proven(request), b"", None
        if verb not in ("notify", "folder"):
            log.warning("unknown verb %r from Sieve: answered false", display_text(verb, 40))
            return False, b"", None
        if verb == "folder":
            # A custom script may ask for every mail: only one with a token is worth a check
            # (and a log line when it fails).
            if not request.fields.get("token") or not self.proven(request):
                return False, b"", None
            plan = self.plan(request, context=request.fields.get("context", ""))
            folders = [a.folder for a in plan.actions if isinstance(a, FileInto)]
            if not folders:
                return False, b"", None
            return True, folders[0].encode("utf-8"), None
        plan = self.plan(request)
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

    def proven(self, request: BridgeRequest) -> bool:
        """True for a voicemail or fax mailcall deposited: its token is the one mailcall's key
        gives for its Message-ID, context and envelope recipient. Anything else is logged:
        Dovecot's script sets it aside (Quarantine)."""
        f = request.fields
        recipient = self._recipient(request)
        message_id, context = f.get("message-id", ""), f.get("context", "").lower()
        token = f.get("token", "")
        if context not in PHONE_CONTEXTS:
            problem = "its Message-Context is not voice-message or fax-message"
        elif not token:
            problem = f"it carries no {SEAL_HEADER} token"
        else:
            try:
                key = deposit_key(self.spool_dir)
            except DepositKeyError as exc:
                log.error("cannot check a deposit for %s: %s", display_text(recipient, 200), exc)
                return False
            # Authentic *and* fresh: a replayed copy of a genuine deposit is older than the
            # window Dovecot's duplicate test remembers its Message-ID for. Real time, as
            # the builder's and Dovecot's (not the policy clock tests move).
            problem = delivery_problem(key, token, message_id, recipient, context,
                                       key_name=f"{self.spool_dir}/deposit.key")
            if problem is None:
                return True
        sender = request.args[2] if len(request.args) > 2 else request.env.get("SENDER")
        log.warning("mail to %s from <%s>, Message-ID %s, claims to be a mailcall deposit but %s: "
                    "not filed as voicemail or fax (the generated script puts it into "
                    "Quarantine)", display_text(recipient, 200), display_text(sender, 200),
                    display_text(message_id, 200) or "(none)", problem)
        return False

    @staticmethod
    def _recipient(request: BridgeRequest) -> str:
        args, env = request.args, request.env
        return args[1] if len(args) > 1 else env.get("RECIPIENT")

    def plan(self, request: BridgeRequest, context: str = "") -> MailPlan:
        """The policy's decision for this mail. `context` is given only for a proven deposit:
        a Message-Context header alone never files anything."""
        args, env, f = request.args, request.env, request.fields
        recipient = self._recipient(request)
        sender = args[2] if len(args) > 2 else env.get("SENDER")
        mail = MailRequest(
            recipient=recipient, sender=sender, at=self.runtime.now(),
            context=context, auto_submitted=f.get("auto-submitted", ""),
            list_id=f.get("list-id", ""), precedence=f.get("precedence", ""),
            subject=f.get("subject", ""),
        )
        plan = plan_mail(self.runtime.policy, mail)
        announce_decision(self.runtime.pm, "mail", mail, plan)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("mail to %s: %s", recipient, "; ".join(plan.explanation))
        return plan


def _answers(path: Path) -> bool:
    """True when something accepts connections on the Unix socket `path`."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(str(path))
    except OSError:
        return False  # ECONNREFUSED: a socket nobody listens on any more
    finally:
        probe.close()
    return True
