"""The refined view of a policy: the compiled policy, refined per user, at decision time.

Routing, the voicemail and deposit plans, the mail plan, the Sieve scripts and
the greetings are pure functions of a :class:`~mailcall.core.policy.model.Policy`.
Rather than teaching each of them about the store, they are handed a *refined
view* of the policy (:func:`refined_policy`): the same snapshot, whose ``users``
and ``absences`` give each user's effective settings (the policy's values
refined by the user's own choices,
:func:`~mailcall.userstore.effective.effective_settings`) the first time a
decision looks that user up. Nothing is recompiled: the cost of a change is one
user's effective settings, computed when a decision needs them; the decisions
get values, never a database handle. Pure: the store is read through the
`lookup` the caller hands in (userstore/overlay.py in a serving process).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping

from mailcall.core.contracts import Medium
from mailcall.core.policy.model import Absence, Policy, User
from mailcall.userstore.effective import Effective, effective_settings
from mailcall.userstore.records import Refinements

Lookup = Callable[[str], Refinements | None]


class EffectiveCache:
    """Effective settings kept across decisions, valid while the policy and the user's
    refinements are the very same objects (the index replaces a changed user's, a reload
    the policy): nothing to invalidate by hand. Bounded, oldest first out."""

    def __init__(self, size: int = 20_000) -> None:
        self.size = size
        self.policy: Policy | None = None
        self._items: dict[str, tuple[Refinements, Effective]] = {}

    def get(self, policy: Policy, uid: str, refined: Refinements) -> Effective | None:
        if policy is not self.policy:
            return None
        item = self._items.get(uid)
        return item[1] if item is not None and item[0] is refined else None

    def put(self, policy: Policy, uid: str, refined: Refinements, found: Effective) -> None:
        if policy is not self.policy:
            self.policy, self._items = policy, {}
        self._items[uid] = (refined, found)
        if len(self._items) > self.size:
            with contextlib.suppress(RuntimeError, StopIteration, KeyError):
                del self._items[next(iter(self._items))]


class _Resolver:
    """One decision's view of the users it touches: effective settings, computed once each."""

    __slots__ = ("_cache", "lookup", "media", "policy", "shared")

    def __init__(self, policy: Policy, lookup: Lookup, media: Mapping[str, Medium] | None,
                 shared: EffectiveCache | None = None) -> None:
        self.policy = policy
        self.lookup = lookup
        self.media = media
        self.shared = shared
        self._cache: dict[str, Effective | None] = {}

    def effective(self, uid: str) -> Effective | None:
        """None when the user refined nothing (the policy's values apply as they are)."""
        try:
            return self._cache[uid]
        except KeyError:
            pass
        refined = self.lookup(uid)
        found = None
        if refined is not None and not refined.empty and uid in self.policy.users:
            shared = self.shared
            found = shared.get(self.policy, uid, refined) if shared is not None else None
            if found is None:
                found = effective_settings(self.policy, uid, refined, media=self.media)
                if shared is not None:
                    shared.put(self.policy, uid, refined, found)
        self._cache[uid] = found
        return found


class _Users(Mapping[str, User]):
    __slots__ = ("_base", "_resolver")

    def __init__(self, base: Mapping[str, User], resolver: _Resolver) -> None:
        self._base = base
        self._resolver = resolver

    def __getitem__(self, uid: str) -> User:
        user = self._base[uid]
        found = self._resolver.effective(uid)
        return user if found is None else found.user

    def __contains__(self, uid: object) -> bool:
        return uid in self._base

    def __iter__(self) -> Iterator[str]:
        return iter(self._base)

    def __len__(self) -> int:
        return len(self._base)


class _Absences(Mapping[str, tuple[Absence, ...]]):
    """The policy file's absences first (each sorted by start), then the user's own.

    ``Policy.absence_at`` takes the first absence covering a moment in this order,
    so where both cover it, the one IT wrote in the policy applies (docs/user-settings.md).
    """

    __slots__ = ("_base", "_extra", "_resolver")

    def __init__(self, base: Mapping[str, tuple[Absence, ...]], resolver: _Resolver,
                 extra: Iterable[str]) -> None:
        self._base = base
        self._resolver = resolver
        self._extra = extra

    def __getitem__(self, uid: str) -> tuple[Absence, ...]:
        found = self._resolver.effective(uid)
        if found is None:
            return self._base[uid]
        absences = tuple(a.absence for a in found.absences)
        if not absences:
            raise KeyError(uid)
        return absences

    def _keys(self) -> set[str]:
        keys = set(self._base)
        keys.update(u for u in self._extra
                    if (f := self._resolver.effective(u)) is not None and f.absences)
        return keys

    def __contains__(self, uid: object) -> bool:
        try:
            self[uid]  # type: ignore[index]
        except KeyError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._keys()))

    def __len__(self) -> int:
        return len(self._keys())


def refined_policy(policy: Policy, lookup: Lookup, *, users: Iterable[str] = (),
                   media: Mapping[str, Medium] | None = None,
                   cache: EffectiveCache | None = None) -> Policy:
    """`policy` as the users' own choices refine it; same snapshot for everything else.

    `lookup` gives a user's stored refinements (None: none); `users` are the ids that
    may have own absences, so that iterating ``absences`` finds them too; `cache` keeps
    effective settings from one decision to the next.
    """
    resolver = _Resolver(policy, lookup, media, cache)
    return dataclasses.replace(policy, users=_Users(policy.users, resolver),
                               absences=_Absences(policy.absences, resolver, users))


def effective_of(policy: Policy, uid: str) -> Effective | None:
    """The effective settings with sources that `policy` (a refined view) holds for `uid`.

    None for a plain compiled policy or a user with no refinement; used by
    ``--explain`` to say where each value came from.
    """
    users = policy.users
    if isinstance(users, _Users):
        return users._resolver.effective(uid)
    return None
