"""A separate process that sets one field many times from a given instant (concurrency test)."""

from __future__ import annotations

import json
import sys
import time

from mailcall.core.policy.load import load_policy
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore


def main() -> None:
    policy_path, store_path, actor, value, count, start_at = sys.argv[1:7]
    policy = load_policy(policy_path)
    store = UserStore(SqliteStore(store_path, timeout=30))
    while time.time() < float(start_at):
        time.sleep(0.001)
    for _ in range(int(count)):
        store.set(policy, "alice", {"backups": json.loads(value)}, actor=actor, origin="cli")
    store.backend.close()


if __name__ == "__main__":
    main()
