"""The storage interface: what any backend of the user store must offer and guarantee.

SQLite (:mod:`mailcall.userstore.sqlite_store`) is the default; a shared
database server takes this role when several hosts run mailcall. Whatever
the backend, it must guarantee (docs/user-settings.md, "Another backend"):

- a :meth:`StoreBackend.apply` is atomic for its user: the values, the absences
  and the audit entries of one change are all committed, or none; two writers
  of the same user are serialised (one wins, both are audited, in order), and
  ``check`` sees the user's state as it is inside that serialised write;
- audit entries carry a sequence number that increases in *commit* order, so
  that :meth:`changes_after` never skips a change committed after a reader's
  last look (a plain database sequence does not promise this under concurrent
  commits: take a per-store lock, or a logical clock row, in the transaction);
- reads never wait for writers (routing reads the store on every refresh);
- failures are raised as :class:`mailcall.userstore.errors.StoreError` subclasses
  naming the location and what to do, never as the driver's own exceptions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from mailcall.userstore.errors import FieldProblem
from mailcall.userstore.records import AuditEntry, Change, Refinements, Stamp

Check = Callable[[Refinements], Sequence[FieldProblem]]
"""Called inside the write with the user's current refinements; problems abort it."""


@runtime_checkable
class StoreBackend(Protocol):
    location: str
    """Where the data is (a file path, a server URL without credentials), for messages."""

    def read(self, user: str) -> Refinements:
        """The user's refinements (empty ones when they have none)."""
        ...

    def read_all(self) -> dict[str, Refinements]:
        """Every user with at least one refinement (to build the in-memory index)."""
        ...

    def apply(self, user: str, change: Change, stamp: Stamp, check: Check | None = None
              ) -> Refinements:
        """Apply `change` atomically with its audit entries; return the new refinements.

        If `check` returns problems, nothing is written and
        :class:`~mailcall.userstore.errors.RefinementRefused` is raised.
        """
        ...

    def last_seq(self) -> int:
        """The sequence number of the latest audit entry (0: none yet)."""
        ...

    def changes_after(self, seq: int) -> tuple[int, frozenset[str]]:
        """The last sequence number and the users changed after `seq`."""
        ...

    def audit(self, user: str | None = None, limit: int = 100) -> list[AuditEntry]:
        """The latest audit entries, newest first (of one user, or of everyone)."""
        ...

    def close(self) -> None:
        ...
