"""Which originals this process copied to Trash and has not flagged \\Deleted yet.

A delete without MOVE is COPY to Trash, then ``\\Deleted`` on the original. When the
connection drops between the two (a hang-up, the network), the session that made the
copy is closed (:class:`mailcall.mailstore.store.MailboxSession` trusts no connection
that failed), so the retry runs on a new connection: the memo therefore lives on the
:class:`~mailcall.mailstore.store.MailStore`, not on a connection, and the retry goes
straight to ``\\Deleted`` instead of copying a second time. It is in memory only: another
process or a restart does not know it (docs/mailstore.md says what covers that).
"""

from __future__ import annotations

import threading
from collections import OrderedDict

Key = tuple[str, str, int, int]
"""(IMAP login, source folder, its UIDVALIDITY, the original's UID)."""

MAX_ENTRIES = 1024
"""Copies remembered at once; past it the oldest is forgotten (a retry of that one may
copy it again). Each entry is a delete cut half-way, so this is hundreds of failures."""


class TrashCopies:
    """Bounded, shared by the store's worker threads (one lock: each use is a dict step)."""

    def __init__(self, limit: int = MAX_ENTRIES) -> None:
        self._limit = limit
        self._copies: OrderedDict[Key, int | None] = OrderedDict()
        self._lock = threading.Lock()

    def __contains__(self, key: Key) -> bool:
        with self._lock:
            return key in self._copies

    def __len__(self) -> int:
        with self._lock:
            return len(self._copies)

    def get(self, key: Key) -> int | None:
        """The Trash copy's UID (COPYUID, RFC 4315), None when the server did not say."""
        with self._lock:
            return self._copies.get(key)

    def remember(self, key: Key, copy_uid: int | None) -> None:
        with self._lock:
            self._copies[key] = copy_uid
            self._copies.move_to_end(key)
            while len(self._copies) > self._limit:
                self._copies.popitem(last=False)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._copies.pop(key, None)
