"""What the store holds for one user, and one audit entry: plain immutable values.

Kept apart from the storage code so that the effective-settings function and
any backend (SQLite today, a shared database server later) share one shape.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

Origin = Literal["cli", "web", "phone"]
ORIGINS: tuple[str, ...] = ("cli", "web", "phone")


@dataclass(frozen=True, slots=True)
class Stamp:
    """Who made a change, when (aware, UTC) and from where."""

    actor: str
    at: datetime
    origin: str


@dataclass(frozen=True, slots=True)
class Stored:
    """One refined setting and the change that set it."""

    value: Any
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class StoredAbsence:
    id: int
    start: datetime
    until: datetime
    backup: str | None
    message: str | None
    stamp: Stamp

    def covers(self, moment: datetime) -> bool:
        return self.start <= moment < self.until


@dataclass(frozen=True, slots=True)
class NewAbsence:
    start: datetime
    until: datetime
    backup: str | None = None
    message: str | None = None


_EMPTY: Mapping[str, Stored] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Refinements:
    """Everything the store holds for one user (empty when they refined nothing)."""

    user: str
    values: Mapping[str, Stored] = field(default_factory=lambda: _EMPTY)
    absences: tuple[StoredAbsence, ...] = ()
    """Sorted by start."""

    @property
    def empty(self) -> bool:
        return not self.values and not self.absences


@dataclass(frozen=True, slots=True)
class Change:
    """One atomic write for one user: every part is applied, or none."""

    set: Mapping[str, Any] = field(default_factory=dict)
    clear: frozenset[str] = frozenset()
    add_absences: tuple[NewAbsence, ...] = ()
    remove_absences: frozenset[int] | None = frozenset()
    """Stored absence ids to remove; None removes every stored absence of the user."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    """Increases in commit order: a reader that saw entry N has seen every change before it."""
    user: str
    field: str
    old: str | None
    new: str | None
    stamp: Stamp

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "user": self.user, "field": self.field, "old": self.old,
                "new": self.new, "actor": self.stamp.actor, "at": self.stamp.at.isoformat(),
                "origin": self.stamp.origin}
