"""The SQLite file shared by several connections of one process and by other processes.

``mailcall serve`` holds the store open twice (the page, the user-store service)
while the CLI and the phone menu's jobs open and close it: what one writes must
be what every other reader sees, at once and after any of them closes.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import date

from mailcall.core.policy.load import load_policy
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.support import EXAMPLE_POLICY


def test_a_change_made_after_a_second_store_opened_is_seen_by_other_processes(tmp_path):
    """Why the page's removal above was invisible to the CLI: ``mailcall serve`` opens the
    store twice (the page, then the user-store service), and opening it used to open and
    close a descriptor of the file, which drops the process's SQLite locks on it (POSIX);
    the next process to close its connection then deleted the WAL that the page still
    wrote to. Seen from another process: the page's second change was lost."""
    path = tmp_path / "store.sqlite"
    policy = load_policy(EXAMPLE_POLICY)
    page = UserStore(SqliteStore(path))
    service = SqliteStore(path)  # the user-store service's connection, opened second

    def rows_seen_elsewhere() -> int:
        # Another process (the CLI) reads and closes: as the last one, it may checkpoint.
        out = subprocess.run([sys.executable, "-c", (
            "import sqlite3, sys; db = sqlite3.connect(sys.argv[1]); "
            "print(db.execute('SELECT count(*) FROM audit').fetchone()[0]); db.close()"),
            str(path)], capture_output=True, text=True, check=True)
        return int(out.stdout)

    try:
        page.set_absence(policy, "alice", until=f"{date.today().year + 1}-01-10", actor="alice",
                         origin="web")  # real clock: within the 5 years ahead allowed
        assert rows_seen_elsewhere() == 1
        page.clear_absences(policy, "alice", actor="alice", origin="web")
        assert rows_seen_elsewhere() == 2
        assert len(service.audit("alice")) == 2
    finally:
        service.close()
        page.backend.close()
