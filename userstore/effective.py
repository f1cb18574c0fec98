"""A user's effective settings: the policy's values refined by the store, each with its source.

Pure: the compiled policy and one user's :class:`Refinements` in, values out;
nothing is recompiled, so the cost of applying a change is that of one user.
Every stored choice is checked again against the policy *as it is now*: IT may
have narrowed a profile since the user chose, and the policy stays the
ceiling — a choice it no longer allows is set aside, with the reason, and the
policy's value is used.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailcall.core.contracts import FromSetting, Medium, UserField
from mailcall.core.policy.model import Absence, Policy, User
from mailcall.userstore.fields import FIELDS, check_absence_backup, check_value, leaf, with_leaf
from mailcall.userstore.records import Refinements, Stamp


@dataclass(frozen=True, slots=True)
class Sourced:
    value: Any
    source: str
    """"profile NAME", "policy file (KEY)" or "user's choice at TIME from WHERE (by ACTOR)"."""
    note: str | None = None
    """Why a stored choice was set aside, when it was."""

    def to_dict(self) -> dict[str, Any]:
        out = {"value": self.value, "source": self.source}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class SourcedAbsence:
    absence: Absence
    source: str
    id: int | None = None
    """The store's id (None: written in the policy file)."""
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        a = self.absence
        out = {"id": self.id, "from": a.start.isoformat(), "until": a.until.isoformat(),
               "backup": a.backup, "message": a.message, "source": self.source}
        if self.note:
            out["note"] = self.note
        return out


@dataclass(frozen=True, slots=True)
class Effective:
    """What the router, the mail plan and the phone menu obey for one user."""

    user: User
    """The policy's user with the refinements applied (features, backups, medium, PIN)."""
    values: Mapping[str, Sourced]
    absences: tuple[SourcedAbsence, ...]
    """Policy file absences first, then the user's own; each sorted by start."""

    def absence_at(self, moment: datetime) -> Absence | None:
        """The absence covering `moment`: one IT wrote in the policy wins over the user's."""
        for item in self.absences:
            if item.absence.covers(moment):
                return item.absence
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"user": self.user.id, "profile": self.user.profile,
                "settings": {k: v.to_dict() for k, v in self.values.items()},
                "absences": [a.to_dict() for a in self.absences]}


def describe(policy: Policy, stamp: Stamp) -> str:
    when = policy.local(stamp.at)
    return f"user's choice at {when:%Y-%m-%d %H:%M %Z} from {stamp.origin} (by {stamp.actor})"


def effective_settings(policy: Policy, user_id: str, refinements: Refinements | None = None,
                       *, media: Mapping[str, Medium] | None = None) -> Effective:
    """The settings `user_id` gets from `policy` and their `refinements`, with sources.

    `media` (the installed media declarations) lets a changed preferred medium find
    its address the way the medium declares it; without, sms and email are known.
    Raises KeyError for a user the policy does not define.
    """
    user = policy.users[user_id]
    stored = refinements.values if refinements is not None else {}
    profile = policy.profiles[user.profile]
    features = user.features
    values: dict[str, Sourced] = {}
    accepted: dict[str, Any] = {}

    def policy_source(key: tuple[str, ...]) -> str:
        if leaf(user.features, key) == leaf(profile.features, key):
            return f"profile {user.profile}"
        return f"policy file (users.{user.id}.overrides.{'.'.join(key)})"

    for name, spec in FIELDS.items():
        if spec.feature is None:
            continue
        choice = stored.get(name)
        note = None
        if choice is not None:
            problem = check_value(policy, user, name, choice.value, accepted)
            if problem is None:
                value = tuple(choice.value) if isinstance(choice.value, list) else choice.value
                features = with_leaf(features, spec.feature, value)
                accepted[name] = value
                values[name] = Sourced(_plain(value), describe(policy, choice.stamp))
                continue
            note = _aside(policy, choice.value, choice.stamp, problem)
        values[name] = Sourced(_plain(leaf(user.features, spec.feature)),
                               policy_source(spec.feature), note)

    backups, values["backups"] = _simple(
        policy, user, "backups", stored, user.backups,
        f"policy file ({'' if user.backups else 'no '}users.{user.id}.backups)")
    pin_hash, pin = _simple(policy, user, "pin", stored, user.pin_hash,
                            f"policy file ({'' if user.pin_hash else 'no '}users.{user.id}.pin)")
    values["pin"] = dataclasses.replace(pin, value="set" if pin_hash else "not set")
    medium, values["preferred_medium"] = _medium(policy, user, stored, features, accepted)

    address = user.notify_address
    if medium != _policy_medium(user):
        address = _address(policy, user, medium, media) if medium else ""
    refined = dataclasses.replace(user, features=features, backups=tuple(backups),
                                  preferred_medium=medium, notify_address=address,
                                  pin_hash=pin_hash)
    return Effective(user=refined, values=values,
                     absences=_absences(policy, user, refinements))


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _aside(policy: Policy, value: Any, stamp: Stamp, problem: str) -> str:
    shown = "(a PIN hash)" if isinstance(value, str) and value.startswith("scrypt$") else value
    return (f"the user's choice {shown!r} ({describe(policy, stamp)}) is set aside: {problem}")


def _simple(policy: Policy, user: User, name: str, stored: Mapping[str, Any], default: Any,
            source: str) -> tuple[Any, Sourced]:
    choice = stored.get(name)
    note = None
    if choice is not None:
        problem = check_value(policy, user, name, choice.value)
        if problem is None:
            value = tuple(choice.value) if isinstance(choice.value, list) else choice.value
            return value, Sourced(_plain(value), describe(policy, choice.stamp))
        note = _aside(policy, choice.value, choice.stamp, problem)
    return default, Sourced(_plain(default), source, note)


def _policy_medium(user: User) -> str | None:
    f = user.features.notify
    if user.preferred_medium:
        return user.preferred_medium
    return f.media[0] if (f.mail or f.voicemail) and f.media else None


def _medium(policy: Policy, user: User, stored: Mapping[str, Any], features: Any,
            accepted: Mapping[str, Any]) -> tuple[str | None, Sourced]:
    media = features.notify.media
    notifies = features.notify.mail or features.notify.voicemail
    choice = stored.get("preferred_medium")
    note = None
    if choice is not None:
        problem = check_value(policy, user, "preferred_medium", choice.value, accepted)
        if problem is None:
            return choice.value, Sourced(choice.value, describe(policy, choice.stamp))
        note = _aside(policy, choice.value, choice.stamp, problem)
    if user.preferred_medium and user.preferred_medium in media:
        return user.preferred_medium, Sourced(
            user.preferred_medium, f"policy file (users.{user.id}.preferred_medium)", note)
    if not notifies or not media:
        return None, Sourced(None, f"profile {user.profile} (no notifications)", note)
    where = ("the user's notify.media" if "notify.media" in accepted
             else f"profile {user.profile}")
    return media[0], Sourced(media[0], f"{where} (its first medium)", note)


def _address(policy: Policy, user: User, medium: str, media: Mapping[str, Medium] | None) -> str:
    declared = (media or {}).get(medium)
    source: Any = declared.address if declared else {"sms": UserField("mobile"),
                                                     "email": UserField("email")}.get(medium)
    if isinstance(source, UserField):
        return (user.mobile if source.name == "mobile" else user.email) or ""
    if isinstance(source, FromSetting):
        return str(policy.channels.of(medium).get(source.name, ""))
    return ""  # a medium whose address is a key of [users.ID]: not kept in the snapshot


def _absences(policy: Policy, user: User, refinements: Refinements | None
              ) -> tuple[SourcedAbsence, ...]:
    out = [SourcedAbsence(a, "policy file ([[absences]])") for a in
           policy.absences.get(user.id, ())]
    for a in (refinements.absences if refinements is not None else ()):
        backup, note = a.backup, None
        if backup is not None and (problem := check_absence_backup(policy, user, backup)):
            note = f"backup {backup!r} set aside: {problem}"
            backup = None
        out.append(SourcedAbsence(
            Absence(user=user.id, start=a.start, until=a.until, backup=backup, message=a.message),
            describe(policy, a.stamp), id=a.id, note=note))
    return tuple(out)
