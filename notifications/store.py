"""The durable notification queue, the de-duplication memory and the rate-limit counts.

One SQLite file, ``{spool_dir}/notifications/queue.sqlite`` (the directory is
mailcall's alone, 0700: the spool root is readable by Asterisk's group, and
the queue holds mobile numbers and mail subjects). SQLite because it is in the
standard library, and gives atomic multi-row transactions and crash recovery
that a directory of JSON files would have to re-implement.

``journal_mode=WAL`` with ``synchronous=FULL``: a commit returns once the
write-ahead log is fsynced, so an accepted notification survives kill -9 *and*
a power cut, the standard the deposit spool holds itself to. The fsync is
paid on the dispatcher's own database thread and shared by every notification
accepted in the same moment (group commit), never on the event loop that
routes calls. (``NORMAL`` would survive kill -9 only; the saving is not worth
an SMS promised and then lost.)

Tables:

- ``queue``: one row per notification accepted and not yet finished
  (``due`` is the wall-clock time of its next attempt);
- ``sent``: one row per notification a channel took, the only thing that
  counts for de-duplication (same user and Message-ID) and for the hourly
  rate limit; a failure writes nothing here. Pruned after the
  de-duplication window, and never more than ``max_sent`` rows;
- ``rate_notes``: per user, until when the "over the hourly rate" warning has
  already been written, so it is written once per user and period.

Every method blocks; the dispatcher calls them on one dedicated thread.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mailcall.core.decisions.plans import Notify

from .notice import MailNotice

log = logging.getLogger("mailcall.notifications")

DIR_NAME = "notifications"
FILE_NAME = "queue.sqlite"
LOCK_NAME = "queue.lock"
SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    medium TEXT NOT NULL,
    message_key TEXT NOT NULL,
    notice TEXT NOT NULL,
    accepted REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sent (
    user TEXT NOT NULL,
    message_key TEXT NOT NULL,
    medium TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_by_user ON sent (user, at);
CREATE INDEX IF NOT EXISTS sent_by_key ON sent (user, message_key) WHERE message_key != '';
CREATE INDEX IF NOT EXISTS sent_by_age ON sent (at);
CREATE TABLE IF NOT EXISTS rate_notes (
    user TEXT PRIMARY KEY,
    until REAL NOT NULL
);
"""


def queue_path(spool_dir: str | os.PathLike[str]) -> Path:
    """Where the queue of a server whose ``[server] spool_dir`` is `spool_dir` lives."""
    return Path(spool_dir) / DIR_NAME / FILE_NAME


class StoreError(Exception):
    """The queue cannot be used; the message says what to do."""


class _Unreadable(Exception):
    """SQLite opened the file but finds it damaged."""


@dataclass(slots=True)
class Entry:
    """One queued notification (its notice carries exactly one :class:`Notify`)."""

    id: int
    notice: MailNotice
    accepted: float
    attempts: int
    due: float
    last_error: str = ""

    @property
    def notification(self) -> Notify:
        return self.notice.notifications[0]

    @property
    def user(self) -> str:
        return self.notification.user


@dataclass(frozen=True, slots=True)
class History:
    """What the ``sent`` table says about a user, at the moment of an attempt."""

    duplicate: bool
    """This Message-ID was already sent to this user within the window."""
    last_hour: int
    """Notifications the user was sent in the hour before."""
    oldest: float | None
    """When the oldest of those was sent (policy clock, epoch seconds)."""


class Store:
    """The queue file, opened once, used from one thread."""

    max_sent = 200_000
    """Hard bound on the ``sent`` table, whatever the window (oldest rows go first)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        self._lock: int | None = None

    # -- opening ---------------------------------------------------------
    def open(self) -> list[Entry]:
        """Open (creating it if needed) and return the entries left from before."""
        if self._db is None:
            self._prepare_dir()
            self._lock = self._take_lock()
            try:
                self._db = self._connect()
            except (_Unreadable, sqlite3.DatabaseError) as exc:
                if not isinstance(exc, _Unreadable) and getattr(
                        exc, "sqlite_errorname", "") not in ("SQLITE_CORRUPT", "SQLITE_NOTADB"):
                    os.close(self._lock)
                    self._lock = None
                    raise StoreError(
                        f"cannot open the notification queue {self.path}: {exc}; it must be "
                        "a local file writable by the user mailcall runs as") from exc
                self._db = self._replace_unreadable(exc)
        return self.pending()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            self.open()
        assert self._db is not None
        return self._db

    def _prepare_dir(self) -> None:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = folder.lstat()
        except OSError as exc:
            raise StoreError(
                f"cannot create the notification queue directory {folder}: {exc}; the "
                "[server] spool_dir must be writable by the user mailcall runs as") from exc
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid():
            raise StoreError(
                f"{folder} is not a directory owned by this user (uid {os.geteuid()}): "
                f"remove it and let mailcall create it (mode 0700)")
        if stat.S_IMODE(info.st_mode) & 0o077:
            folder.chmod(0o700)

    def _take_lock(self) -> int:
        lock = self.path.with_name(LOCK_NAME)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 16, 0).split(b"\n", 1)[0]
            os.close(fd)
            pid = holder.decode() if holder.isdigit() else "unknown"
            raise StoreError(
                f"the notification queue {self.path} is already used by another 'mailcall "
                f"serve' (pid {pid}, see {lock}); two would send the same notifications "
                "twice. Stop that one first (systemctl stop mailcall), or give this one its "
                "own --spool-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return fd

    def _connect(self) -> sqlite3.Connection:
        # Created 0600 before SQLite opens it: its -wal and -shm files take the same mode.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                         0o600))
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreError(
                    f"{self.path}: SQLite refused write-ahead logging (journal mode {mode}); "
                    "put the [server] spool_dir on a local file system")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer mailcall (schema {version}): "
                    "run that version, or move the file aside to start an empty queue")
            db.executescript(_SCHEMA)
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise _Unreadable(f"integrity check: {check}")
        except BaseException:
            db.close()
            raise
        return db

    def _replace_unreadable(self, exc: Exception) -> sqlite3.Connection:
        """A queue SQLite cannot read (disk fault, a stray file): keep it aside, start anew.

        Refusing to start would stop call routing for want of SMS; the file is kept
        for the admin, and what it held is said to be lost.
        """
        aside = self.path.with_name(f"{FILE_NAME}.unreadable-{int(time.time())}")
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        log.error("notification queue %s is unreadable (%s): moved to %s and started an "
                  "empty one; notifications it held are lost (the mail itself is in the "
                  "mailboxes). Check the disk (dmesg)", self.path, exc, aside)
        return self._connect()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    # -- the queue -------------------------------------------------------
    def pending(self) -> list[Entry]:
        rows = self.db.execute(
            "SELECT id, notice, accepted, attempts, due, last_error FROM queue ORDER BY id")
        entries = []
        for eid, notice, accepted, attempts, due, error in rows:
            try:
                parsed = MailNotice.from_json(notice)
            except (ValueError, KeyError, TypeError) as exc:
                log.error("notification queue %s: entry %d cannot be read (%s): dropped",
                          self.path, eid, exc)
                self.remove(eid)
                continue
            entries.append(Entry(eid, parsed, accepted, attempts, due, error))
        return entries

    def add(self, notices: list[MailNotice], now: float) -> list[Entry]:
        """Queue each notice (one notification each), all in one transaction."""
        entries = []
        with self._transaction() as db:
            for notice in notices:
                n = notice.notifications[0]
                cursor = db.execute(
                    "INSERT INTO queue (user, medium, message_key, notice, accepted, due) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (n.user, n.medium, notice.dedupe_key, notice.to_json(), now, now))
                assert cursor.lastrowid is not None
                entries.append(Entry(cursor.lastrowid, notice, now, 0, now))
        return entries

    def reschedule(self, entry_id: int, attempts: int, due: float, error: str) -> None:
        with self._transaction() as db:
            db.execute("UPDATE queue SET attempts = ?, due = ?, last_error = ? WHERE id = ?",
                       (attempts, due, error, entry_id))

    def remove(self, entry_id: int) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM queue WHERE id = ?", (entry_id,))

    def mark_sent(self, entry: Entry, at: float) -> None:
        """The channel took it: it now counts for de-duplication and the rate limit."""
        n = entry.notification
        with self._transaction() as db:
            db.execute("INSERT INTO sent (user, message_key, medium, at) VALUES (?, ?, ?, ?)",
                       (n.user, entry.notice.dedupe_key, n.medium, at))
            db.execute("DELETE FROM queue WHERE id = ?", (entry.id,))

    # -- de-duplication and rate -----------------------------------------
    def history(self, user: str, key: str, dedupe_since: float, rate_since: float) -> History:
        db = self.db
        duplicate = bool(key) and db.execute(
            "SELECT 1 FROM sent WHERE user = ? AND message_key = ? AND at > ? LIMIT 1",
            (user, key, dedupe_since)).fetchone() is not None
        count, oldest = db.execute("SELECT count(*), min(at) FROM sent WHERE user = ? AND at > ?",
                                   (user, rate_since)).fetchone()
        return History(duplicate, count, oldest)

    def note_limit(self, user: str, at: float, until: float) -> bool:
        """True when no "over the rate" warning covers `at` yet (and note this one)."""
        with self._transaction() as db:
            row = db.execute("SELECT until FROM rate_notes WHERE user = ?", (user,)).fetchone()
            if row is not None and row[0] > at:
                return False
            db.execute("INSERT OR REPLACE INTO rate_notes (user, until) VALUES (?, ?)",
                       (user, until))
        return True

    def prune(self, sent_before: float) -> int:
        """Forget sends older than the window (and the oldest beyond ``max_sent``)."""
        with self._transaction() as db:
            gone = db.execute("DELETE FROM sent WHERE at < ?", (sent_before,)).rowcount
            extra = db.execute("SELECT count(*) FROM sent").fetchone()[0] - self.max_sent
            if extra > 0:
                gone += db.execute(
                    "DELETE FROM sent WHERE rowid IN (SELECT rowid FROM sent ORDER BY at "
                    "LIMIT ?)", (extra,)).rowcount
            db.execute("DELETE FROM rate_notes WHERE until < ?", (sent_before,))
        return gone
