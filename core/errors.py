"""Policy problems, reported all at once with file, key path, line and reason.

A sysadmin fixing a policy at 3 a.m. wants every mistake in one run, each
pointing at the place to edit, and never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    key: str
    """Dotted key path, e.g. "users.alice.profile"."""
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        return f"{where}:{key} {self.message}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "key": self.key, "message": self.message}


class PolicyInvalid(Exception):
    """The policy cannot be used; nothing of it was applied."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line or 0, p.key))
        super().__init__(self.report())

    def report(self) -> str:
        n = len(self.problems)
        head = f"policy rejected: {n} problem{'s' if n != 1 else ''} (nothing was applied)"
        return "\n".join([head, *(f"  {p}" for p in self.problems)])


class ServiceStartError(Exception):
    """A ``mailcall serve`` service cannot start, for a reason the administrator can fix.

    ``mailcall serve`` prints the message alone (no traceback) and exits 1, so
    the message says what is wrong, where, and what to do.
    """
