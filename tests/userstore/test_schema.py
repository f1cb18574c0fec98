"""The file: created WAL, private and versioned; migrated forward from an older version; and
every way it can be unusable is a typed error naming the path and what to do."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from mailcall.userstore.errors import StoreCorrupt, StoreLocked, StoreUnavailable
from mailcall.userstore.records import Change, Stamp
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import APPLICATION_ID, MIGRATIONS, SCHEMA_VERSION, SqliteStore
from tests.userstore.conftest import NOW

STAMP = Stamp(actor="it:test", at=NOW, origin="cli")


def test_new_file_is_wal_versioned_and_private(backend, store_path):
    db = sqlite3.connect(store_path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert db.execute("PRAGMA application_id").fetchone()[0] == APPLICATION_ID
    tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert {"refinements", "absences", "audit", "audit_by_user"} <= tables
    db.close()
    assert stat.S_IMODE(store_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store_path.parent.stat().st_mode) == 0o700


def test_migrates_a_version_1_file_and_keeps_its_data(store_path):
    store_path.parent.mkdir(parents=True)
    db = sqlite3.connect(store_path)
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO refinements VALUES ('alice', 'notify.hours', '\"office\"', "
               "'2026-11-30T08:00:00+00:00', 'it:old', 'cli')")
    db.execute("INSERT INTO audit (at, user, field, old, new, actor, origin) VALUES "
               "('2026-11-30T08:00:00+00:00', 'alice', 'notify.hours', NULL, '\"office\"', "
               "'it:old', 'cli')")
    db.execute("PRAGMA user_version = 1")
    db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    db.commit()
    db.close()

    store = SqliteStore(store_path)
    try:
        assert store.read("alice").values["notify.hours"].value == "office"
        assert [e.field for e in store.audit("alice")] == ["notify.hours"]
    finally:
        store.close()
    db = sqlite3.connect(store_path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("SELECT 1 FROM sqlite_master WHERE name = 'audit_by_user'").fetchone()
    db.close()


def test_a_newer_schema_is_refused_not_downgraded(store_path):
    SqliteStore(store_path).close()
    db = sqlite3.connect(store_path)
    db.execute("PRAGMA user_version = 9")
    db.commit()
    db.close()
    with pytest.raises(StoreUnavailable) as info:
        SqliteStore(store_path)
    assert str(info.value).startswith(
        f"the user store {store_path} has schema version 9, newer than this mailcall knows "
        "(2): it was written by a newer release; upgrade mailcall on this host")
    assert info.value.path == str(store_path)


def test_another_programs_sqlite_file_is_refused(tmp_path):
    path = tmp_path / "other.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE mine (x)")
    db.commit()
    db.close()
    with pytest.raises(StoreCorrupt, match="is an SQLite file but not a mailcall user store"):
        SqliteStore(path)
    assert sqlite3.connect(path).execute("SELECT name FROM sqlite_master").fetchall() == [
        ("mine",)], "the foreign file must be left as it was"


def test_garbage_file_is_corrupt_with_path_and_what_to_do(tmp_path):
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"this is not a database at all" * 200)
    with pytest.raises(StoreCorrupt) as info:
        SqliteStore(path)
    message = str(info.value)
    assert str(path) in message
    assert "restore the last backup (docs/user-settings.md, 'Backups')" in message
    assert "calls and mail keep following the policy file alone meanwhile" in message
    assert path.read_bytes().startswith(b"this is not"), "a damaged file is never replaced"


def test_damaged_pages_are_reported_on_read(store_path, policy):
    store = UserStore(SqliteStore(store_path), clock=lambda: NOW)
    for i in range(300):
        store.backend.apply(f"user{i}", Change(set={"notify.hours": "office" * 50}), STAMP)
    store.backend._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.backend.close()
    data = bytearray(store_path.read_bytes())
    page = 4096
    assert len(data) > 6 * page
    data[2 * page:5 * page] = b"\xff" * (3 * page)
    store_path.write_bytes(bytes(data))
    with pytest.raises(StoreCorrupt, match="is damaged"):
        backend = SqliteStore(store_path)
        try:
            backend.read_all()
        finally:
            backend.close()


def test_unusable_folder_is_unavailable(tmp_path):
    blocker = tmp_path / "state"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StoreUnavailable) as info:
        SqliteStore(blocker / "users" / "store.sqlite")
    assert str(info.value).startswith(
        f"cannot open the user store {blocker}/users/store.sqlite: Not a directory; it must "
        "be a local file readable and writable by the user mailcall runs as")


HOLD = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("INSERT INTO audit (at, user, field, old, new, actor, origin) VALUES "
           "('x', 'holder', 'f', NULL, NULL, 'a', 'cli')")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
"""


def test_locked_store_writes_fail_typed_and_reads_go_on(store_path, policy):
    SqliteStore(store_path).close()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(store_path), "5"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = UserStore(SqliteStore(store_path, timeout=0.3), clock=lambda: NOW)
        started = time.monotonic()
        with pytest.raises(StoreLocked) as info:
            store.set(policy, "alice", {"notify.hours": "office"}, actor="it:t", origin="cli")
        assert time.monotonic() - started < 3
        assert str(info.value).startswith(
            f"the user store {store_path} stayed locked by another process for more than "
            "0.3 s (write); nothing was changed: try again in a moment")
        # WAL: routing's reads do not wait for the writer that holds the lock
        assert store.refinements("alice").empty
        assert store.effective(policy, "alice").values["notify.hours"].source == "profile sales"
        store.backend.close()
    finally:
        holder.kill()
        holder.wait()
    after = SqliteStore(store_path)
    assert after.audit() == [], "the holder rolled back; nothing half-written remains"
    after.close()


def test_audit_values_are_json_and_pin_hash_is_never_written_to_the_log(backend, store,
                                                                         policy):
    from mailcall.core.policy.pins import hash_pin

    secret = hash_pin("4321")
    store.set(policy, "alice", {"pin": secret, "backups": ["@reception"]}, actor="it:t",
              origin="phone")
    rows = sqlite3.connect(backend.path).execute("SELECT field, old, new FROM audit").fetchall()
    assert ("pin", None, "(a PIN hash)") in rows
    assert ("backups", None, json.dumps(["@reception"])) in rows
    assert secret not in repr(rows)
