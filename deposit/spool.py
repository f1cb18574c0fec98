"""The durable spool: a deposit is on disk, fsynced, before the call goes back to the dialplan.

Layout under ``server.spool_dir`` (one filesystem, so ``rename`` is atomic)::

    tmp/                 files being written; anything here after a crash is garbage
    data/ID.wav|.tif     the spool's own copy of the recording or fax
    messages/ID.eml      the message once built (retries send the very same bytes)
    incoming/ID.json     accepted, not yet tried
    deferred/ID.json     a temporary failure; ``next_attempt`` says when to try again
    delivered/ID.json    the server said 250 (kept for ``mailcall spool list``/purge)
    parked/ID.json       a permanent failure, with the reason; only a human retries it

Every write goes through ``tmp/`` and is fsynced, file and directory. A state
change renames the new record in before unlinking the old one, so a crash can
leave one id in two states but never in none; readers take the most advanced
state (delivered > parked > deferred > incoming) and :meth:`Spool.recover`
removes the stale copy.

The spool ID is derived from (kind, mailbox, Asterisk unique id): accepting
the same call twice (a handler retried after a timeout) keeps one deposit.

How each file is written is :mod:`mailcall.deposit.spool_files`; the lock that
keeps one ``mailcall serve`` per spool, :mod:`mailcall.deposit.spool_lock`; the
handlers reach the spool through :mod:`mailcall.deposit.spool_depositor`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from mailcall.agi.folders import recordings_folder
from mailcall.core.decisions.deposits import Deposit, VoiceMessage

from .headers import id_part
from .spool_files import NotARegularFile, copy_atomic, fsync_dir, write_atomic
from .spool_lock import lock_spool
from .spool_record import SpoolRecord, kind_of

log = logging.getLogger(__name__)

STATES = ("incoming", "deferred", "parked", "delivered")
"""In increasing precedence: a record found in two states is in the later one."""
DIRS = ("tmp", "data", "messages", *STATES)
_VALID_ID = re.compile(r"^(voice|fax)-[A-Za-z0-9.\-]{0,40}-[0-9a-f]{16}$")


class SpoolError(Exception):
    """The spool cannot be written (disk full, permissions...): the deposit was NOT accepted."""


def spool_id(message: Deposit) -> str:
    kind = kind_of(message)
    digest = hashlib.sha256(f"{kind}\0{message.mailbox}\0{message.call_id}".encode()).hexdigest()
    return f"{kind}-{id_part(message.call_id)}-{digest[:16]}"


def valid_id(value: str) -> bool:
    """True for a spool id; guards the CLI against path tricks such as ``../x``."""
    return bool(_VALID_ID.match(value))


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
        """Take the spool for this process (:func:`mailcall.deposit.spool_lock.lock_spool`)."""
        self.ensure()
        return lock_spool(self.root)

    def unusable(self, exc: OSError) -> str:
        """What to tell the admin when :meth:`ensure` or :meth:`recover` failed."""
        return (f"cannot use the deposit spool {self.root}: {exc}; create it, owned by the "
                "user mailcall runs as (mode 0750), or set [server] spool_dir / --spool-dir")

    def _release(self, source: Path) -> None:
        """Remove a recording Asterisk left in ``rec/`` once the spool holds its own copy.

        ``rec/`` is where the dialplan and the handlers have Asterisk record
        (``vm-*.wav``, ``fax-*.tif``); nothing else removes what lands there.
        A file anywhere else belongs to whoever deposited it and is left alone.
        """
        try:
            if source.parent.resolve() != recordings_folder(self.root).resolve():
                return
            source.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("could not remove %s after the spool took its copy (%s); it can be "
                        "deleted by hand", source, exc.strerror)

    def write_message(self, sid: str, data: bytes) -> Path:
        path = self.message_path(sid)
        write_atomic(self.root, path, data)
        return path

    def write_wire(self, sid: str, data: bytes) -> Path:
        path = self.wire_path(sid)
        write_atomic(self.root, path, data)
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
        write_atomic(self.root, self.path(state, sid), record.to_bytes())
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
                    if not copy_atomic(self.root, src, target):
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
            write_atomic(self.root, self.path("incoming", sid), record.to_bytes())
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
