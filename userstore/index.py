"""The in-memory index a serving process keeps: every user's refinements, refreshed per user.

Built once from :meth:`StoreBackend.read_all`, then kept current by asking the
backend which users changed after the last audit sequence number seen and
re-reading only those: the cost of a change is one user's rows, whatever the
number of users, and the compiled policy is never rebuilt. A store that cannot
be read leaves the index as it was (the last good view) and says why in
:attr:`RefinementIndex.problem`, so routing goes on.
"""

from __future__ import annotations

from collections.abc import KeysView

from mailcall.core.policy.model import Policy
from mailcall.userstore.backend import StoreBackend
from mailcall.userstore.effective import Effective, effective_settings
from mailcall.userstore.errors import StoreError
from mailcall.userstore.records import Refinements


class RefinementIndex:
    def __init__(self, backend: StoreBackend) -> None:
        self.backend = backend
        self._by_user: dict[str, Refinements] = {}
        self.seq = 0
        self.problem: StoreError | None = None
        """Why the last refresh failed (None: the index is current)."""
        self.replaced: dict[str, Refinements | None] = {}

    def load(self) -> None:
        """Read everything; the sequence number is taken first so no change falls between."""
        seq = self.backend.last_seq()
        self._by_user = self.backend.read_all()
        self.seq = seq

    def refresh(self) -> frozenset[str]:
        """Re-read the users changed since the last refresh; return their ids.

        :attr:`replaced` then holds what each of them held before (None: nothing).
        """
        self.replaced = {}
        try:
            seq, users = self.backend.changes_after(self.seq)
            for user in users:
                refined = self.backend.read(user)
                self.replaced[user] = self._by_user.get(user)
                if refined.empty:
                    self._by_user.pop(user, None)
                else:
                    self._by_user[user] = refined
        except StoreError as exc:
            self.problem = exc
            return frozenset()
        self.seq = seq
        self.problem = None
        return users

    def get(self, user: str) -> Refinements | None:
        return self._by_user.get(user)

    def users(self) -> KeysView[str]:
        """The users with at least one refinement (a live view)."""
        return self._by_user.keys()

    def effective(self, policy: Policy, user: str) -> Effective:
        return effective_settings(policy, user, self._by_user.get(user))

    def __len__(self) -> int:
        return len(self._by_user)
