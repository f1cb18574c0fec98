"""The audit log: who, when, what (old -> new), from where; and two real processes writing the
same field at the same moment: one wins, both are audited in order, the file stays sound."""

from __future__ import annotations

import itertools
import json
import sqlite3
import subprocess
import sys
import time

import pytest

from mailcall.userstore.sqlite_store import SqliteStore
from tests.support import REPO
from tests.userstore.conftest import EXAMPLE, NOW


def test_every_change_is_audited_with_old_and_new(store, policy):
    store.set(policy, "alice", {"notify.hours": "office"}, actor="alice", origin="web")
    store.set(policy, "alice", {"notify.hours": "office", "reroute.mobile": False},
              actor="it:root", origin="cli")
    store.set_absence(policy, "alice", until="2026-12-12", backup="bernard", actor="alice",
                      origin="phone")
    store.clear(policy, "alice", ["reroute.mobile", "greetings"], actor="it:root",
                origin="cli")
    entries = [(e.field, e.old, e.new, e.stamp.actor, e.stamp.origin)
               for e in reversed(store.audit("alice"))]
    absence = json.dumps({"id": 1, "from": "2026-12-01T10:00:00+01:00",
                          "until": "2026-12-12T00:00:00+01:00", "backup": "bernard",
                          "message": None})
    assert entries == [
        ("notify.hours", None, '"office"', "alice", "web"),
        ("notify.hours", '"office"', '"office"', "it:root", "cli"),
        ("reroute.mobile", None, "false", "it:root", "cli"),
        ("absence", None, absence, "alice", "phone"),
        ("reroute.mobile", "false", None, "it:root", "cli"),  # greetings was not set: no entry
    ]
    assert {e.stamp.at for e in store.audit("alice")} == {NOW}
    assert [e.seq for e in store.audit()] == [5, 4, 3, 2, 1]


def test_origin_and_actor_are_required_and_cleaned(store, policy):
    with pytest.raises(ValueError, match="origin must be one of cli, web, phone"):
        store.set(policy, "alice", {"notify.hours": "office"}, actor="a", origin="ssh")
    with pytest.raises(ValueError, match="needs an actor"):
        store.set(policy, "alice", {"notify.hours": "office"}, actor=" \n", origin="cli")
    store.set(policy, "alice", {"notify.hours": "office"}, actor="eve\r\nFAKE", origin="cli")
    assert store.audit("alice")[0].stamp.actor == "eve FAKE"


def test_two_processes_same_field_same_moment(store_path):
    SqliteStore(store_path).close()
    per_writer = 40
    start_at = time.time() + 2.0
    values = {"writer-a": ["bernard", "@reception"], "writer-b": ["@reception"]}
    procs = [subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "userstore" / "writer_main.py"), str(EXAMPLE),
         str(store_path), actor, json.dumps(value), str(per_writer), str(start_at)],
        stderr=subprocess.PIPE, text=True) for actor, value in values.items()]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err

    db = sqlite3.connect(store_path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.close()
    store = SqliteStore(store_path)
    try:
        entries = list(reversed(store.audit("alice", limit=1000)))
        stored = store.read("alice").values["backups"]
    finally:
        store.close()
    assert len(entries) == 2 * per_writer
    assert sorted(e.stamp.actor for e in entries) == ["writer-a"] * per_writer + [
        "writer-b"] * per_writer
    # serialised: each entry's old value is the new value of the one before it
    assert entries[0].old is None
    for before, after in itertools.pairwise(entries):
        assert after.old == before.new
    # the last committed write won, and its writer is the one the row names
    assert stored.value == json.loads(entries[-1].new)
    assert stored.stamp.actor == entries[-1].stamp.actor
    switches = sum(a.stamp.actor != b.stamp.actor for a, b in itertools.pairwise(entries))
    assert switches >= 1, "the two writers never interleaved: the test did not race them"
