"""The durable spool: a deposit is on disk, fsynced, before the caller hears goodbye.

Layout under ``server.spool_dir`` (one filesystem, so ``rename`` is atomic)::

    tmp/                 files being written; anything here after a crash is garbage
    data/ID.wav|.tif     the spool's own copy of the recording or fax
    messages/ID.eml      the message once built (retries send the very same bytes)
    incoming/ID.json     accepted, not yet tried
    deferred/ID.json     a temporary failure; ``next_attempt`` says when to try again
    delivered/ID.json    the server said 250 (kept for ``mailcall spool list``/purge)
    parked/ID.json       a permanent failure, with the reason; only a human retries it

Every write is: write to ``tmp/``, fsync the file, rename into place, fsync the
directory. A state change renames the new record in before unlinking the old
one, so a crash can leave one id in two states but never in none; readers take
the most advanced state (delivered > parked > deferred > incoming) and
:meth:`Spool.recover` removes the stale copy.

The spool ID is derived from (kind, mailbox, Asterisk unique id): accepting
the same call twice (a handler retried after a timeout) keeps one deposit.

One ``mailcall serve`` per spool (``lock``, held by ``flock`` on ``serve.lock``):
a second one would run :meth:`Spool.recover`, which empties ``tmp/``, under
the first one's accepts, and both would deliver the same records. The kernel
drops the lock with the process, even after SIGKILL, so a crash never leaves
a stale lock behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from mailcall.core.decisions.deposits import Deposit, VoiceMessage

from .spool_record import SpoolRecord, kind_of
from .wav_header import complete_wav_header

T = TypeVar("T")
log = logging.getLogger(__name__)

STATES = ("incoming", "deferred", "parked", "delivered")
"""In increasing precedence: a record found in two states is in the later one."""
DIRS = ("tmp", "data", "messages", *STATES)
LOCK_FILE = "serve.lock"
_ID_SAFE = re.compile(r"[^A-Za-z0-9.\-]")
_VALID_ID = re.compile(r"^(voice|fax)-[A-Za-z0-9.\-]{0,40}-[0-9a-f]{16}$")


class NotARegularFile(OSError):
    """A recording path that names a device, a folder or a pipe."""


class SpoolBusy(Exception):
    """Another process serves this spool (see :meth:`Spool.lock`)."""


class SpoolError(Exception):
    """The spool cannot be written (disk full, permissions...): the deposit was NOT accepted."""


def spool_id(message: Deposit) -> str:
    kind = kind_of(message)
    digest = hashlib.sha256(f"{kind}\0{message.mailbox}\0{message.call_id}".encode()).hexdigest()
    return f"{kind}-{_ID_SAFE.sub('', message.call_id)[:40]}-{digest[:16]}"


def valid_id(value: str) -> bool:
    """True for a spool id; guards the CLI against path tricks such as ``../x``."""
    return bool(_VALID_ID.match(value))


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def now_utc() -> datetime:
    return datetime.now(UTC)


class Spool:
    """Blocking file operations on one spool directory (run them off the event loop)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def ensure(self) -> None:
        """The spool's own folders, mailcall's alone (0700): the spool root is open to
        Asterisk's group so it can reach rec/, but the sealed messages waiting here carry
        their deposit token, which that group must not read and send ahead of them."""
        for name in DIRS:
            folder = self.root / name
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            if stat.S_IMODE(folder.stat().st_mode) & 0o077:  # made 0750 by older versions
                os.chmod(folder, 0o700)

    def lock(self) -> int:
        """Take the spool for this process; the returned descriptor holds it until closed.

        Raises :class:`SpoolBusy` naming the process that holds it. The file is the
        mailcall user's alone (0600, never through a link): the spool root is
        readable by Asterisk's group, and nobody else may hold, empty or replace it.
        """
        self.ensure()
        path = self.root / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                raise SpoolBusy(
                    f"{path} is not a regular file owned by this user (uid {os.geteuid()}): "
                    f"remove it (rm {path}) and make {self.root} writable by mailcall only "
                    "(mode 2750, docs/asterisk.md section 2)")
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 16, 0).split(b"\n", 1)[0]
                pid = holder.decode() if holder.isdigit() else "unknown"
                raise SpoolBusy(
                    f"the deposit spool {self.root} is already used by another 'mailcall "
                    f"serve' (pid {pid}, see {path}); two would deliver the same voicemails "
                    "twice. Stop that one first (systemctl stop mailcall), or give this one "
                    "its own --spool-dir") from None
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def unusable(self, exc: OSError) -> str:
        """What to tell the admin when :meth:`ensure` or :meth:`recover` failed."""
        return (f"cannot use the deposit spool {self.root}: {exc}; create it, owned by the "
                "user mailcall runs as (mode 0750), or set [server] spool_dir / --spool-dir")

    # -- atomic writes ---------------------------------------------------
    def _write_atomic(self, target: Path, data: bytes) -> None:
        tmp = self.root / "tmp" / f"{target.name}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)

    def _copy_atomic(self, source: Path, target: Path) -> bool:
        """Copy `source` to `target` durably; True when it was still being written."""
        unfinished = False
        tmp = self.root / "tmp" / f"{target.name}.{os.getpid()}.tmp"
        # The recordings folder is writable by Asterisk: a link planted there must never
        # make mailcall mail out a file it can read. No link is followed, and what is
        # opened must be a regular file (checked on the open descriptor, not the name).
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise NotARegularFile(f"{source} is not a regular file")
        with os.fdopen(fd, "rb") as src, open(tmp, "w+b") as dst:
            # Copied by the kernel (sendfile; shutil's fallback where that is refused), not
            # through Python buffers: this runs in the FastAGI process, and a burst of 1 MB
            # copies through bytes objects was what slowed call routing most during a burst
            # of deposits (bench/deposit/bench_offloop.py: the slowest sessions all fell in
            # the first 50 ms, while the recordings were being accepted).
            try:
                size = os.fstat(src.fileno()).st_size
                offset = 0
                while offset < size:
                    sent = os.sendfile(dst.fileno(), src.fileno(), offset, size - offset)
                    if sent == 0:
                        break
                    offset += sent
            except OSError:
                src.seek(0)
                dst.seek(0)
                dst.truncate()
                shutil.copyfileobj(src, dst, 1 << 20)
            if target.suffix == ".wav":
                dst.flush()
                if complete_wav_header(dst.fileno()):
                    unfinished = True
                    log.warning("recording %s was still being written by Asterisk when it was "
                                "deposited (mailcall stopping, or the call's connection lost): "
                                "its header was completed from its length, %d bytes; the file "
                                "is left where it is", source, os.fstat(dst.fileno()).st_size)
            os.fsync(dst.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
        return unfinished

    def _release(self, source: Path) -> None:
        """Remove a recording Asterisk left in ``rec/`` once the spool holds its own copy.

        ``rec/`` is where the dialplan and the handlers have Asterisk record
        (``vm-*.wav``, ``fax-*.tif``); nothing else removes what lands there.
        A file anywhere else belongs to whoever deposited it and is left alone.
        """
        try:
            if source.parent.resolve() != (self.root / "rec").resolve():
                return
            source.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s after the spool took its copy (%s); it can be "
                        "deleted by hand", source, exc.strerror)

    def write_message(self, sid: str, data: bytes) -> Path:
        path = self.message_path(sid)
        self._write_atomic(path, data)
        return path

    def write_wire(self, sid: str, data: bytes) -> Path:
        path = self.wire_path(sid)
        self._write_atomic(path, data)
        return path

    def message_path(self, sid: str) -> Path:
        return self.root / "messages" / f"{sid}.eml"

    def wire_path(self, sid: str) -> Path:
        """The message as sent after DATA: CRLF, dot-stuffed, ending with CRLF.CRLF."""
        return self.root / "messages" / f"{sid}.wire"

    # -- records ---------------------------------------------------------
    def path(self, state: str, sid: str) -> Path:
        return self.root / state / f"{sid}.json"

    def state_of(self, sid: str) -> str | None:
        for state in reversed(STATES):
            if self.path(state, sid).exists():
                return state
        return None

    def load(self, sid: str) -> SpoolRecord | None:
        state = self.state_of(sid)
        if state is None:
            return None
        path = self.path(state, sid)
        try:
            data = json.loads(path.read_bytes())
            if isinstance(data, dict):
                data["state"] = state  # the folder says, whatever the file does
            return SpoolRecord.from_json(data)
        except FileNotFoundError:  # moved on by another process in between
            return self.load(sid) if self.state_of(sid) not in (None, state) else None
        except ValueError as exc:  # not JSON, or a field that is wrong (named in exc)
            # Set aside, never deleted: the recording in data/ is still there for a human.
            path.replace(path.with_suffix(".json.corrupt"))
            log.error("spool record %s is unreadable (%s); moved aside to %s.corrupt",
                      path, exc, path.name)
            return None

    def save(self, record: SpoolRecord, state: str) -> None:
        """Put `record` in `state`, durably, then drop it from any other state."""
        sid = record.id
        record = dataclasses.replace(record, state=state)
        self._write_atomic(self.path(state, sid), record.to_bytes())
        for other in STATES:
            if other != state:
                with contextlib.suppress(FileNotFoundError):
                    self.path(other, sid).unlink()
                    fsync_dir(self.root / other)

    def prepare(self, record: SpoolRecord, state: str) -> Path:
        """Write `record` for `state` into tmp/, fsynced, without making it current.

        :meth:`commit` then needs one ``rename`` only: the worker prepares the
        "delivered" record before sending the message, so that after the server's
        250 a single system call, made at once on the event loop, records it.
        """
        sid = record.id
        tmp = self.root / "tmp" / f"{sid}.{state}.prepared"
        with open(tmp, "wb") as f:
            f.write(dataclasses.replace(record, state=state).to_bytes())
            f.flush()
            os.fsync(f.fileno())
        return tmp

    def commit(self, prepared: Path, state: str, sid: str) -> None:
        """Make a prepared record current: one rename (durable after :meth:`save`)."""
        os.replace(prepared, self.path(state, sid))

    def ids(self, state: str) -> list[str]:
        folder = self.root / state
        if not folder.is_dir():
            return []
        return sorted(p.stem for p in folder.glob("*.json"))

    def notify_pending(self) -> list[SpoolRecord]:
        """Delivered records whose notification was never handed to the notifier (a crash
        between the server's 250 and the notifier's commit). Only the files that say so
        are parsed: delivered records pile up until ``mailcall spool purge``."""
        pending = []
        for sid in self.ids("delivered"):
            try:
                if b'"notify_pending": true' not in self.path("delivered", sid).read_bytes():
                    continue
            except FileNotFoundError:
                continue
            record = self.load(sid)
            if record is not None and record.state == "delivered" and record.notify_pending:
                pending.append(record)
        return pending

    def notified(self, sid: str) -> None:
        """The notification of delivered record `sid` is in the notifier's durable queue."""
        try:
            record = self.load(sid)
            if record is not None and record.state == "delivered" and record.notify_pending:
                self.save(dataclasses.replace(record, notify_pending=False), "delivered")
        except OSError as exc:  # it is then handed over once more at next start: deduplicated
            log.warning("spool record %s: cannot note that its notification is queued (%s)",
                        sid, exc)

    def notified_when(self, accepted: object, sid: str) -> None:
        """Clear `sid`'s pending notification once `accepted` (the future the notifier's
        ``submit`` returned) says it is on disk; None or True: nothing to wait for (no
        notification planned, or no notifier to ever take it); False: someone else clears
        it (the delivery child leaves it to serve). Never blocks the loop."""
        if accepted is None or accepted is True:
            asyncio.get_running_loop().run_in_executor(None, self.notified, sid)
            return
        if not isinstance(accepted, asyncio.Future):
            return

        def done(future: asyncio.Future) -> None:
            if not future.cancelled() and future.exception() is None and future.result():
                future.get_loop().run_in_executor(None, self.notified, sid)

        accepted.add_done_callback(done)

    def records(self, states: tuple[str, ...] = STATES) -> Iterator[SpoolRecord]:
        seen: set[str] = set()
        for state in reversed(STATES):
            for sid in self.ids(state):
                if sid in seen:
                    continue
                seen.add(sid)
                if state in states:
                    record = self.load(sid)
                    if record is not None:
                        yield record

    def recover(self) -> int:
        """After a crash: drop half-written temp files and stale lower-state copies."""
        for leftover in (self.root / "tmp").glob("*"):
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        fixed = 0
        for index, state in enumerate(STATES):
            for sid in self.ids(state):
                if any(self.path(later, sid).exists() for later in STATES[index + 1 :]):
                    self.path(state, sid).unlink(missing_ok=True)
                    fixed += 1
        if fixed:
            log.info("spool %s: %d record(s) left in two states by a crash, resolved",
                     self.root, fixed)
        return fixed

    def remove(self, sid: str) -> None:
        """Forget a deposit entirely (``mailcall spool purge``)."""
        for state in STATES:
            self.path(state, sid).unlink(missing_ok=True)
        self.message_path(sid).unlink(missing_ok=True)
        self.wire_path(sid).unlink(missing_ok=True)
        for payload in (self.root / "data").glob(f"{sid}.*"):
            payload.unlink(missing_ok=True)

    # -- accepting -------------------------------------------------------
    def accept(self, message: Deposit) -> str:
        """Make `message` durable; returns its id. Raises :class:`SpoolError` only if the
        spool itself cannot be written, never because of a bad recording."""
        sid = spool_id(message)
        if self.state_of(sid) is not None:
            log.info("deposit %s already in the spool: accepted once", sid)
            return sid
        kind = kind_of(message)
        source = message.recording if isinstance(message, VoiceMessage) else message.tiff
        payload: str | None = None
        note = ""
        copied: Path | None = None
        try:
            self.ensure()
            if source:
                src = Path(source)
                suffix = ".wav" if kind == "voice" else ".tif"
                target = self.root / "data" / f"{sid}{suffix}"
                try:
                    if not self._copy_atomic(src, target):
                        copied = src  # finished by Asterisk: removable once the record is in
                    payload = str(target.relative_to(self.root))
                except FileNotFoundError:
                    note = f"{src} does not exist"
                except NotARegularFile as exc:
                    note = f"{exc}: refused"
                except OSError as exc:
                    if exc.errno == errno.ELOOP:
                        note = f"{src} is a symbolic link: refused"
                        log.warning("deposit %s: %s", sid, note)
                    elif isinstance(exc, PermissionError):
                        note = f"could not read {src}: {exc}"
                    else:
                        raise
            record = SpoolRecord(id=sid, kind=kind, deposit=message, payload=payload, note=note,
                                 accepted_at=now_utc())
            self._write_atomic(self.path("incoming", sid), record.to_bytes())
        except OSError as exc:
            raise SpoolError(
                f"cannot write the deposit {sid} into the spool {self.root}: {exc}; "
                "check free space and that mailcall owns the directory"
            ) from exc
        if note:
            log.warning("deposit %s accepted without its file: %s", sid, note)
        if copied is not None:
            self._release(copied)
        return sid


class SpoolDepositor:
    """The ``Depositor`` the FastAGI handlers call through ``runtime.deposit``."""

    def __init__(self, spool: Spool) -> None:
        self.spool = spool
        self._listeners: list[Callable[[str], None]] = []
        self._thread: ThreadPoolExecutor | None = None

    def subscribe(self, listener: Callable[[str], None]) -> None:
        """`listener(spool_id)` is called after each accept (the worker's wake-up)."""
        self._listeners.append(listener)

    async def exclusive(self, func: Callable[[], T]) -> T:
        """Run `func` on the accept thread: never at the same time as an accept
        (``Spool.recover`` empties ``tmp/``, where accepts write)."""
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-accept")
        return await asyncio.get_running_loop().run_in_executor(self._thread, func)

    async def accept(self, message: Deposit) -> str:
        # One thread of our own, not the loop's default pool: 20 simultaneous accepts in
        # 6 default-pool threads made the FastAGI loop queue for the GIL behind them (their
        # Python code between fsyncs), which showed as the burst's slowest routing sessions.
        # Serialised, the 20th caller waits for 19 accepts (a few ms each), fsyncs included.
        if self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spool-accept")
        loop = asyncio.get_running_loop()
        sid = await loop.run_in_executor(self._thread, self.spool.accept, message)
        for listener in self._listeners:
            listener(sid)
        return sid
