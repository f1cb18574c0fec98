"""The default backend: one SQLite file in mailcall's state directory.

``journal_mode=WAL`` so that readers (routing refreshing its index) never wait
for a writer, ``synchronous=FULL`` so that a change the CLI or the page
confirmed survives a power cut. Every write is one ``BEGIN IMMEDIATE``
transaction: SQLite serialises writers on the whole file, which gives the
per-user atomicity and the commit-ordered audit sequence the interface asks
for (AUTOINCREMENT ids are handed out inside that one writer at a time).

The schema is versioned with ``PRAGMA user_version`` and migrated forward by
the steps in :data:`MIGRATIONS`, run in one transaction when a file older than
this code is opened; a file newer than this code is refused, never
downgraded. ``PRAGMA application_id`` marks the file as a user store, so that
another program's SQLite file given by mistake is refused, not "migrated".
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from mailcall.userstore.backend import Check
from mailcall.userstore.errors import (
    FALLBACK,
    RefinementRefused,
    StoreCorrupt,
    StoreError,
    StoreLocked,
    StoreUnavailable,
)
from mailcall.userstore.records import (
    AuditEntry,
    Change,
    Refinements,
    Stamp,
    Stored,
    StoredAbsence,
)

APPLICATION_ID = 0x4D435553  # "MCUS": mailcall user store

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: refinements, stored absences, audit log
    (
        """CREATE TABLE refinements (
               user TEXT NOT NULL, field TEXT NOT NULL, value TEXT NOT NULL,
               at TEXT NOT NULL, actor TEXT NOT NULL, origin TEXT NOT NULL,
               PRIMARY KEY (user, field)) WITHOUT ROWID""",
        """CREATE TABLE absences (
               id INTEGER PRIMARY KEY AUTOINCREMENT, user TEXT NOT NULL,
               start TEXT NOT NULL, until TEXT NOT NULL, backup TEXT, message TEXT,
               at TEXT NOT NULL, actor TEXT NOT NULL, origin TEXT NOT NULL)""",
        "CREATE INDEX absences_by_user ON absences (user, start)",
        """CREATE TABLE audit (
               id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, user TEXT NOT NULL,
               field TEXT NOT NULL, old TEXT, new TEXT,
               actor TEXT NOT NULL, origin TEXT NOT NULL)""",
    ),
    # 2: the admin view reads one user's history; without this it scans the whole log
    ("CREATE INDEX audit_by_user ON audit (user, id)",),
)
SCHEMA_VERSION = len(MIGRATIONS)

PIN_SHOWN = "(a PIN hash)"
"""What the audit log says instead of a PIN hash: the hash is a secret too."""


def _what_to_do(path: str) -> str:
    return (f"it must be a local file readable and writable by the user mailcall runs as "
            f"(run the CLI as that user, e.g. sudo -u mailcall); check {path} and its folder")


class SqliteStore:
    """The user store in one SQLite file; one connection, used from one thread."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 5.0) -> None:
        self.path = Path(path)
        self.location = str(self.path)
        self.timeout = timeout
        self._db = self._open()

    # -- opening ---------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        folder = self.path.parent
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Created 0600 before SQLite opens it: its -wal and -shm files take the same
            # mode, and the file holds PIN hashes. Not for a regular file already there:
            # closing any descriptor of it drops this process's SQLite locks on it (POSIX),
            # and another process's last close then deletes the WAL we still write to.
            if os.path.islink(self.path) or not os.path.isfile(self.path) or \
                    not os.access(self.path, os.R_OK | os.W_OK):  # else: its error, as before
                os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW,
                                 0o600))
        except OSError as exc:
            raise StoreUnavailable(self.location, (
                f"cannot open the user store {self.path}: {exc.strerror}; "
                f"{_what_to_do(self.location)}; {FALLBACK}")) from None
        db: sqlite3.Connection | None = None
        with self._guard("open"):
            db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            try:
                mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if mode != "wal":
                    raise StoreUnavailable(self.location, (
                        f"the user store {self.path} cannot use SQLite's write-ahead log "
                        f"(journal mode stays {mode!r}): put it on a local file system; "
                        f"{FALLBACK}"))
                db.execute("PRAGMA synchronous=FULL")
                self._migrate(db)
            except BaseException:
                db.close()
                raise
        assert db is not None
        return db

    def _migrate(self, db: sqlite3.Connection) -> None:
        # Only an out-of-date file takes the write lock: opening must not wait for a writer,
        # or a reader (routing) could not start while the CLI holds a change open.
        if (db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
                and db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID):
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            app = db.execute("PRAGMA application_id").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            tables = db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if app != APPLICATION_ID and (app != 0 or tables):
                raise StoreCorrupt(self.location, (
                    f"{self.path} is an SQLite file but not a mailcall user store "
                    f"(application_id {app:#x}): give the right path (--store or "
                    f"$MAILCALL_USER_STORE), or move that file away; {FALLBACK}"))
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(self.location, (
                    f"the user store {self.path} has schema version {version}, newer than "
                    f"this mailcall knows ({SCHEMA_VERSION}): it was written by a newer "
                    f"release; upgrade mailcall on this host (files are never downgraded); "
                    f"{FALLBACK}"))
            for step in MIGRATIONS[version:]:
                for statement in step:
                    db.execute(statement)
            if version < SCHEMA_VERSION:
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _guard(self, action: str) -> Iterator[None]:
        try:
            yield
        except StoreError:
            raise
        except sqlite3.Error as exc:
            raise self._translate(exc, action) from exc

    def _translate(self, exc: sqlite3.Error, action: str) -> StoreError:
        name = getattr(exc, "sqlite_errorname", "") or ""
        if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return StoreLocked(self.location, (
                f"the user store {self.path} stayed locked by another process for more than "
                f"{self.timeout:g} s ({action}); nothing was changed: try again in a moment; "
                f"if it persists, find the holder with 'fuser {self.path}'; {FALLBACK}"))
        if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")):
            return StoreCorrupt(self.location, (
                f"the user store {self.path} is damaged ({exc}); restore the last backup "
                f"(docs/user-settings.md, 'Backups'), or move the file aside to start empty "
                f"(the users' choices in it are then lost); {FALLBACK}"))
        return StoreUnavailable(self.location, (
            f"the user store {self.path} cannot be used ({action}: {exc}); "
            f"{_what_to_do(self.location)}; {FALLBACK}"))

    def close(self) -> None:
        self._db.close()

    # -- reading ---------------------------------------------------------
    def read(self, user: str) -> Refinements:
        with self._guard("read"), self._snapshot():
            return self._read(user)

    def read_all(self) -> dict[str, Refinements]:
        values: dict[str, dict[str, Stored]] = {}
        absences: dict[str, list[StoredAbsence]] = {}
        with self._guard("read"), self._snapshot():
            for user, fld, value, at, actor, origin in self._db.execute(
                    "SELECT user, field, value, at, actor, origin FROM refinements"):
                values.setdefault(user, {})[fld] = Stored(json.loads(value),
                                                          _stamp(at, actor, origin))
            for row in self._db.execute(
                    "SELECT user, id, start, until, backup, message, at, actor, origin "
                    "FROM absences ORDER BY user, start"):
                absences.setdefault(row[0], []).append(_absence(row[1:]))
        return {u: Refinements(u, values.get(u, {}), tuple(absences.get(u, ())))
                for u in values.keys() | absences.keys()}

    def last_seq(self) -> int:
        with self._guard("read"):
            return self._db.execute("SELECT coalesce(max(id), 0) FROM audit").fetchone()[0]

    def changes_after(self, seq: int) -> tuple[int, frozenset[str]]:
        with self._guard("read"), self._snapshot():
            rows = self._db.execute("SELECT id, user FROM audit WHERE id > ?", (seq,)).fetchall()
        if not rows:
            return seq, frozenset()
        return max(r[0] for r in rows), frozenset(r[1] for r in rows)

    def audit(self, user: str | None = None, limit: int = 100) -> list[AuditEntry]:
        sql = "SELECT id, user, field, old, new, at, actor, origin FROM audit"
        params: tuple[Any, ...] = ()
        if user is not None:
            sql += " WHERE user = ?"
            params = (user,)
        with self._guard("read"):
            rows = self._db.execute(f"{sql} ORDER BY id DESC LIMIT ?", (*params, limit))
            return [AuditEntry(r[0], r[1], r[2], r[3], r[4], _stamp(*r[5:])) for r in rows]

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction: the values and absences of a user come from one commit."""
        self._db.execute("BEGIN")
        try:
            yield
        finally:
            self._db.execute("COMMIT")

    def _read(self, user: str) -> Refinements:
        values = {fld: Stored(json.loads(value), _stamp(at, actor, origin))
                  for fld, value, at, actor, origin in self._db.execute(
                      "SELECT field, value, at, actor, origin FROM refinements WHERE user = ?",
                      (user,))}
        absences = tuple(_absence(r) for r in self._db.execute(
            "SELECT id, start, until, backup, message, at, actor, origin FROM absences "
            "WHERE user = ? ORDER BY start", (user,)))
        return Refinements(user, values, absences)

    # -- writing ---------------------------------------------------------
    def apply(self, user: str, change: Change, stamp: Stamp, check: Check | None = None
              ) -> Refinements:
        db = self._db
        with self._guard("write"):
            db.execute("BEGIN IMMEDIATE")
            try:
                current = self._read(user)
                problems = list(check(current)) if check else []
                if problems:
                    raise RefinementRefused(user, problems)
                self._write(user, current, change, stamp)
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return self.read(user)

    def _write(self, user: str, current: Refinements, change: Change, stamp: Stamp) -> None:
        db = self._db
        at = stamp.at.isoformat()
        audit = []
        for fld, value in change.set.items():
            old = current.values.get(fld)
            db.execute(
                "INSERT INTO refinements (user, field, value, at, actor, origin) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (user, field) DO UPDATE SET "
                "value = excluded.value, at = excluded.at, actor = excluded.actor, "
                "origin = excluded.origin", (user, fld, json.dumps(value), at, stamp.actor,
                                             stamp.origin))
            audit.append((fld, _shown(fld, old.value) if old else None, _shown(fld, value)))
        for fld in sorted(change.clear):
            old = current.values.get(fld)
            if old is not None:
                db.execute("DELETE FROM refinements WHERE user = ? AND field = ?", (user, fld))
                audit.append((fld, _shown(fld, old.value), None))
        removed = (current.absences if change.remove_absences is None else
                   [a for a in current.absences if a.id in change.remove_absences])
        for a in removed:
            db.execute("DELETE FROM absences WHERE id = ?", (a.id,))
            audit.append(("absence", _absence_text(a.id, a.start, a.until, a.backup, a.message),
                          None))
        for new in change.add_absences:
            cur = db.execute(
                "INSERT INTO absences (user, start, until, backup, message, at, actor, origin) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (user, new.start.isoformat(), new.until.isoformat(), new.backup, new.message, at,
                 stamp.actor, stamp.origin))
            audit.append(("absence", None, _absence_text(cur.lastrowid, new.start, new.until,
                                                         new.backup, new.message)))
        db.executemany(
            "INSERT INTO audit (at, user, field, old, new, actor, origin) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [(at, user, fld, old, new, stamp.actor, stamp.origin) for fld, old, new in audit])


def _stamp(at: str, actor: str, origin: str) -> Stamp:
    return Stamp(actor=actor, at=datetime.fromisoformat(at), origin=origin)


def _absence(row: tuple) -> StoredAbsence:
    aid, start, until, backup, message, at, actor, origin = row
    return StoredAbsence(id=aid, start=datetime.fromisoformat(start),
                         until=datetime.fromisoformat(until), backup=backup, message=message,
                         stamp=_stamp(at, actor, origin))


def _shown(fld: str, value: Any) -> str:
    return PIN_SHOWN if fld == "pin" else json.dumps(value, ensure_ascii=False)


def _absence_text(aid: int | None, start: datetime, until: datetime, backup: str | None,
                  message: str | None) -> str:
    return json.dumps({"id": aid, "from": start.isoformat(), "until": until.isoformat(),
                       "backup": backup, "message": message}, ensure_ascii=False)
