"""Typed errors of the user store, each with the path and what to do.

Callers that route calls or mail catch :class:`StoreError` and keep deciding
from the policy file alone; the CLI turns each class into its own exit status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FALLBACK = "calls and mail keep following the policy file alone meanwhile"


class StoreError(Exception):
    """The store cannot be used; ``str()`` says where and what to do."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path


class StoreLocked(StoreError):
    """Another process holds the write lock longer than we wait: retry later."""


class StoreCorrupt(StoreError):
    """The file is not a user store, or is damaged: restore a backup."""


class StoreUnavailable(StoreError):
    """The file cannot be opened or written (permissions, missing folder, newer schema)."""


@dataclass(frozen=True, slots=True)
class FieldProblem:
    field: str
    """The setting concerned, as the CLI names it (``notify.media``, ``absence.until``)."""
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class RefinementRefused(Exception):
    """A change the policy (or the data) does not allow; nothing was saved."""

    def __init__(self, user: str, problems: Sequence[FieldProblem]) -> None:
        self.user = user
        self.problems = tuple(problems)
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"refused for user '{user}' (nothing was saved):\n{lines}")
