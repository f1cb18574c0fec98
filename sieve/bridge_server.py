"""The Sieve script socket: accepts Dovecot's connections, reads each request, writes the answer.

Transport only; what to answer comes from a ``decide`` callable
(:class:`~mailcall.sieve.mail_decision.MailDecider` in ``mailcall serve``). Design
rules, from Dovecot 2.3.19's behaviour (shared/dovecot/README.md):

* Always answer, and answer fast: every request is answered under
  ``answer_timeout`` (far inside ``sieve_execute_exec_timeout``). On timeout, bad
  input or any error the answer is ``-`` (false) — fail open: the script goes on
  and the mail is delivered.
* Dovecot's connect timeout is 5 ms, hence the large listen backlog.
* The socket is bound under a temporary name, given its mode and the group of its
  directory, then renamed into place: Dovecot never sees a socket it may not open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from mailcall.core.errors import ServiceStartError
from mailcall.core.sansio import RemoteProtocolError

from .mail_decision import Verdict
from .mail_facts import BridgeRequest, RequestReader
from .script_protocol import Limits, serialize_reply

log = logging.getLogger(__name__)

BACKLOG = 4096
DEFAULT_ANSWER_TIMEOUT = 1.0
LIMITS = Limits(max_line=4096, max_env=32, max_args=16, max_input=64 * 1024)
READ_SIZE = 65536

Decide = Callable[[BridgeRequest], Verdict]
Answered = Callable[[Verdict], None]


class _Connection:
    """One Dovecot connection, on a raw non-blocking socket.

    Not an ``asyncio.Protocol``: asyncio's server spends a task, a transport and
    three event-loop turns per accepted connection before the first byte is read,
    more than deciding costs (docs/dovecot.md has the figures). Here the request is
    often read and answered in the very turn that accepts it (Dovecot writes its
    whole request and shuts its side down straight after connecting), with one
    ``send`` and one ``close``; otherwise the socket waits in the loop's reader set.
    One periodic sweep (:meth:`ScriptSocketServer._sweep`) enforces every deadline
    instead of a timer per connection.
    """

    __slots__ = ("answered", "closed", "deadline", "eof", "fd", "pending", "reading",
                 "request", "server", "sock", "writing")

    def __init__(self, server: ScriptSocketServer, sock: socket.socket, deadline: float) -> None:
        self.server = server
        self.sock = sock
        self.fd = sock.fileno()
        self.deadline = deadline
        self.request = RequestReader(LIMITS)
        self.answered = False
        self.eof = False
        self.pending = b""
        """Part of the answer the socket did not take at once (never in practice: it is tiny)."""
        self.reading = self.writing = self.closed = False

    def wait_readable(self) -> None:
        self.reading = True
        self.server.loop.add_reader(self.fd, self.readable)

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
            verdict = self.server.decide(request)
        except RemoteProtocolError as exc:
            log.warning("bad request from Dovecot: %s: answered false", exc)
            self.answer(False)
            return
        except Exception:
            log.exception("Sieve bridge error: answered false (the mail is delivered anyway)")
            self.answer(False)
            return
        self.answer(verdict.ok, verdict.output)
        if self.server.answered is not None:
            self.server.answered(verdict)

    def answer(self, ok: bool, output: bytes = b"") -> None:
        """Send the verdict, then say we are done (our EOF ends Dovecot's read)."""
        self.answered = True
        self.deadline = self.server.loop.time() + self.server.answer_timeout
        self.pending = serialize_reply(ok, output)
        self._flush()

    def _flush(self) -> None:
        loop = self.server.loop
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
                        self.server.answer_timeout)
            self.answer(False)
        else:
            self.close()  # the peer neither reads its answer nor ends its request: give up

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        loop = self.server.loop
        if self.reading:
            loop.remove_reader(self.fd)
        if self.writing:
            loop.remove_writer(self.fd)
        self.server._open.pop(self.fd, None)
        self.sock.close()


class ScriptSocketServer:
    """Serves Dovecot's script protocol on the UNIX socket `path`.

    `decide` gives the verdict of each complete request (an exception answers false);
    `answered`, if given, gets each verdict once its answer is on its way (the bridge
    queues notifications there, after Dovecot has its answer).
    """

    def __init__(self, path: str | os.PathLike[str], decide: Decide, *,
                 answered: Answered | None = None, answer_timeout: float | None = None,
                 socket_mode: int = 0o660) -> None:
        self.path = Path(path)
        self.decide = decide
        self.answered = answered
        self.answer_timeout = answer_timeout or DEFAULT_ANSWER_TIMEOUT
        self.socket_mode = socket_mode
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
        assert self._loop is not None, "Sieve socket server not started"
        return self._loop

    @property
    def open_connections(self) -> int:
        return len(self._open)

    def check_path(self) -> None:
        """Refuse, with what to do, a socket path this server cannot or must not take."""
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

    async def start(self) -> None:
        """Bind, set mode and group, rename into place, and accept (after :meth:`check_path`)."""
        self._loop = asyncio.get_running_loop()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(str(tmp))
            listener.listen(BACKLOG)
            listener.setblocking(False)
            # Group of the directory: the admin gives it the group the mail processes run as.
            os.chown(tmp, -1, self.path.parent.stat().st_gid)
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
        """Stop accepting, give open requests `grace` seconds, answer false to the rest."""
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
