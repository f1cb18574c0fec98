"""The store applied to decisions in a serving process, and for commands.

Decisions are handed the refined view of the policy
(:func:`~mailcall.userstore.refined_view.refined_policy`, pure). In a serving
process a :class:`StoreOverlay` keeps the
:class:`~mailcall.userstore.index.RefinementIndex` current (a refresh costs one
query when nothing changed) and :func:`decision_policy` is what adapters call
instead of ``runtime.policy``. A store that cannot be read gives the policy
alone, with one log line when that starts and one when it ends.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailcall.core.contracts import Medium
from mailcall.core.host.plugin_manager import announce
from mailcall.core.policy.model import Policy
from mailcall.userstore.errors import FALLBACK, StoreError
from mailcall.userstore.index import RefinementIndex
from mailcall.userstore.records import Refinements
from mailcall.userstore.refined_view import EffectiveCache, refined_policy

if TYPE_CHECKING:
    from mailcall.core.host.runtime import Runtime

log = logging.getLogger("mailcall.userstore")

ABSENCES = "absences"
"""The name, in a change's ``fields``, of the user's own absences."""


class StoreOverlay:
    """A serving process's view of the store: the index, kept current, and its failures.

    `min_interval` bounds how often a decision refreshes the index (a query of the
    audit log, ~10 µs when nothing changed): with 0.01 s, a change is obeyed by every
    decision taken 10 ms after it was committed, or sooner.
    """

    def __init__(self, backend_factory: Callable[[], Any], location: str, *,
                 media: Mapping[str, Medium] | None = None, min_interval: float = 0.01,
                 retry_after: float = 5.0, clock: Callable[[], float] = time.monotonic,
                 exists: Callable[[], bool] | None = None) -> None:
        self._factory = backend_factory
        self._exists = exists
        """Whether there is a store yet: a serving process never creates one (the first
        change by the CLI or the web page does); until then the policy applies alone."""
        self.location = location
        self.media = media
        self.min_interval = min_interval
        self.retry_after = retry_after
        self.clock = clock
        self.index: RefinementIndex | None = None
        self.problem: str | None = None
        """Why decisions follow the policy alone now (None: the store is applied)."""
        self._last_refresh = float("-inf")
        self._last_attempt = float("-inf")
        self._changed: dict[str, Refinements | None] = {}
        """Users changed since the last :meth:`take_changed`, with what they held before."""
        self.cache = EffectiveCache()

    @classmethod
    def for_file(cls, path: str | Path, **kwargs: Any) -> StoreOverlay:
        from mailcall.userstore.sqlite_store import SqliteStore

        # A short busy wait: a reader of a WAL file is not blocked by writers, and a store
        # that stays locked must not hold a call for the CLI's 5 s.
        return cls(lambda: SqliteStore(path, timeout=0.25), str(path),
                   exists=Path(path).exists, **kwargs)

    # -- keeping current -------------------------------------------------
    def open(self) -> bool:
        """Open the store and load the index (at start-up); False with the reason logged,
        or silently when there is no store yet."""
        self._last_attempt = self.clock()
        if self._exists is not None and not self._exists():
            return False
        backend = None
        try:
            backend = self._factory()
            index = RefinementIndex(backend)
            index.load()
        except StoreError as exc:
            if backend is not None:
                backend.close()
            self._fail(str(exc))
            return False
        self.index = index
        self._last_refresh = self.clock()
        for uid in index.users():  # what they hold is news to whoever generates from it
            self._changed.setdefault(uid, None)
        self._recover()
        return True

    def refresh(self, *, force: bool = False) -> bool:
        """Bring the index up to date if it is older than `min_interval`; True if usable."""
        now = self.clock()
        if self.index is None:
            if self.problem is None:  # no store yet: look for it at each refresh (a stat)
                if now - self._last_refresh < self.min_interval and not force:
                    return False
                self._last_refresh = now
                return self.open()
            if now - self._last_attempt < self.retry_after:
                return False
            return self.open()
        if self.problem is not None and now - self._last_attempt < self.retry_after:
            return False  # failing: retried every retry_after s, never at every call
        if not force and now - self._last_refresh < self.min_interval:
            return self.problem is None
        self._last_refresh = now
        changed = self.index.refresh()
        if self.index.problem is not None:
            self._last_attempt = now
            self._fail(str(self.index.problem))
            return False
        for uid in changed:
            self._changed.setdefault(uid, self.index.replaced.get(uid))
        self._recover()
        return True

    def take_changed(self) -> dict[str, frozenset[str]]:
        """The users changed since the last call, each with the names of the fields that
        changed (``mailcall.userstore.fields`` names, and ``absences``)."""
        changed, self._changed = self._changed, {}
        return {uid: changed_fields(before, self.lookup(uid)) for uid, before in changed.items()}

    def announce_changes(self, runtime: Runtime) -> dict[str, frozenset[str]]:
        """Take the changes and call ``mailcall_user_settings_changed`` once per user.

        Each plugin through its own ``pm.hook`` subset: one that raises is logged and
        the others still hear of the change.
        """
        changed = self.take_changed()
        for uid, fields in changed.items():
            announce(runtime.pm, "mailcall_user_settings_changed",
                     f"the change of user {uid}'s own settings stands",
                     runtime=runtime, user_id=uid, fields=fields)
        return changed

    def _fail(self, why: str) -> None:
        if self.problem != why:
            log.warning("user store not applied: %s", why if FALLBACK in why
                        else f"{why}; {FALLBACK}")
        self.problem = why

    def _recover(self) -> None:
        if self.problem is not None:
            log.warning("user store %s readable again: users' own settings apply again",
                        self.location)
        self.problem = None

    # -- deciding --------------------------------------------------------
    def lookup(self, uid: str) -> Refinements | None:
        return self.index.get(uid) if self.index is not None else None

    def policy(self, policy: Policy) -> Policy:
        """`policy` refined by the store, or `policy` alone when the store cannot be read."""
        if not self.refresh() or self.index is None:
            return policy
        return refined_policy(policy, self.index.get, users=self.index.users(),
                              media=self.media, cache=self.cache)

    def close(self) -> None:
        if self.index is not None:
            self.index.backend.close()
            self.index = None


# -- where a runtime's overlay is kept: Runtime.user_overlay ----------------------------
def attach(runtime: Runtime, overlay: StoreOverlay) -> None:
    """Make `runtime`'s decisions obey `overlay` (the user store service does this)."""
    runtime.user_overlay = overlay


def detach(runtime: Runtime) -> StoreOverlay | None:
    overlay, runtime.user_overlay = runtime.user_overlay, None
    return overlay


def overlay_of(runtime: Runtime) -> StoreOverlay | None:
    return runtime.user_overlay


def changed_fields(before: Refinements | None, after: Refinements | None) -> frozenset[str]:
    """The names of what differs between two states of one user's refinements."""
    old = before.values if before is not None else {}
    new = after.values if after is not None else {}
    names = {k for k in old.keys() | new.keys()
             if k not in old or k not in new or old[k].value != new[k].value}
    if _absences(before) != _absences(after):
        names.add(ABSENCES)
    return frozenset(names)


def _absences(refined: Refinements | None) -> tuple:
    if refined is None:
        return ()
    return tuple((a.id, a.start, a.until, a.backup, a.message) for a in refined.absences)


def decision_policy(runtime: Runtime) -> Policy:
    """The policy a decision must use now: refined by the user store when one is attached."""
    overlay = runtime.user_overlay
    return runtime.policy if overlay is None else overlay.policy(runtime.policy)


def store_view(policy: Policy, path: str | Path, *, everyone: bool = False,
               media: Mapping[str, Medium] | None = None) -> tuple[Policy, list[str]]:
    """For commands: `policy` refined by the store at `path`, and why it could not be.

    The list of problems is filled when the store cannot be opened, or later when a
    user's refinements cannot be read as a decision looks them up (that user then
    gets the policy's values): read it after deciding. A store file that does not
    exist yet holds no choice (nothing is created). With `everyone` the whole store
    is read at once (``mailcall sieve install``); otherwise one user at a time.
    """
    from mailcall.userstore.sqlite_store import SqliteStore

    problems: list[str] = []
    if not Path(path).exists():
        return policy, problems
    try:
        backend = SqliteStore(path, timeout=1.0)
    except StoreError as exc:
        return policy, [str(exc)]
    if everyone:
        try:
            data = backend.read_all()
        except StoreError as exc:
            return policy, [str(exc)]
        finally:
            backend.close()
        return refined_policy(policy, data.get, users=data.keys(), media=media), problems

    def read(uid: str) -> Refinements | None:
        try:
            return backend.read(uid)
        except StoreError as exc:
            if str(exc) not in problems:
                problems.append(str(exc))
            return None

    return refined_policy(policy, read, media=media), problems
