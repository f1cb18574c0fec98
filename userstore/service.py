"""The user store as its callers use it: validated changes, audited writes, effective settings.

The CLI, the web page and the phone menu all go through :class:`UserStore`, so
they refuse the same things with the same messages: the policy is the ceiling
(:mod:`mailcall.userstore.fields`), and everything a change depends on is checked
inside the backend's atomic write, against the user's state at that moment.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from mailcall.core.contracts import Medium
from mailcall.core.policy.model import Policy, User
from mailcall.core.text import display_text
from mailcall.userstore.backend import StoreBackend
from mailcall.userstore.effective import Effective, effective_settings
from mailcall.userstore.errors import FieldProblem, RefinementRefused
from mailcall.userstore.fields import FIELDS, check_absence_backup, check_value, field_names
from mailcall.userstore.records import (
    ORIGINS,
    AuditEntry,
    Change,
    NewAbsence,
    Refinements,
    Stamp,
)

MESSAGE_LIMIT = 1000
"""Characters of an absence message: it is read aloud and sent as an auto-reply."""

YEARS_BACK = 1
YEARS_AHEAD = 5
"""The window an absence of the user store lies in, counted from now: it starts at most
one year ago and ends at most 5 years ahead. Dates beyond are typing mistakes (year 1,
9999-12-31), and they would overflow the UTC times the Sieve auto-replies compare."""


def parse_moment(value: str | date | datetime, policy: Policy) -> datetime:
    """A date or date-time, aware; naive ones are in the organisation's time zone.

    A date alone is that day at 00:00, as in the policy's ``[[absences]]``: ``until
    2026-12-12`` means back on the 12th. Raises ValueError with the accepted forms.
    """
    if isinstance(value, str):
        text = value.strip()
        try:
            value = (datetime.fromisoformat(text) if "T" in text or " " in text
                     else date.fromisoformat(text))
        except ValueError:
            raise ValueError(f"{display_text(text, 40)!r} is not a date or date-time like "
                             "2026-12-12 or 2026-12-12T18:00") from None
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return policy.local(value) if value.tzinfo is None else value


class UserStore:
    """Validated, audited access to a :class:`StoreBackend`."""

    def __init__(self, backend: StoreBackend, *,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.backend = backend
        self.clock = clock

    # -- reading ---------------------------------------------------------
    def refinements(self, user: str) -> Refinements:
        return self.backend.read(user)

    def effective(self, policy: Policy, user: str, *,
                  media: Mapping[str, Medium] | None = None) -> Effective:
        return effective_settings(policy, _user(policy, user).id, self.backend.read(user),
                                  media=media)

    def audit(self, user: str | None = None, limit: int = 100) -> list[AuditEntry]:
        return self.backend.audit(user, limit)

    # -- changing --------------------------------------------------------
    def set(self, policy: Policy, user: str, values: Mapping[str, Any], *, actor: str,
            origin: str) -> Refinements:
        """Set refinements; every value is checked, and none is saved if one is refused."""
        target = _user(policy, user)
        values = {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        if not values:
            raise RefinementRefused(user, [FieldProblem("settings", (
                f"nothing to set; the settings are: {field_names()}"))])

        def check(current: Refinements) -> list[FieldProblem]:
            combined = {k: s.value for k, s in current.values.items()} | values
            problems = [FieldProblem(name, msg) for name, value in values.items()
                        if (msg := check_value(policy, target, name, value, combined))]
            if not problems and "notify.media" in values:
                problems += _medium_left_out(target, combined)
            return problems

        return self.backend.apply(user, Change(set=values), self._stamp(actor, origin), check)

    def clear(self, policy: Policy, user: str, fields: Iterable[str] | None = None, *,
              actor: str, origin: str) -> Refinements:
        """Forget refinements (all of them, stored absences included, when `fields` is None)."""
        _user(policy, user)
        names = list(fields) if fields is not None else None
        unknown = [f for f in names or () if f not in FIELDS]
        if unknown:
            raise RefinementRefused(user, [FieldProblem(f, (
                f"is not a setting users may change; they are: {field_names()}"))
                for f in unknown])
        change = (Change(clear=frozenset(FIELDS), remove_absences=None) if names is None
                  else Change(clear=frozenset(names)))
        return self.backend.apply(user, change, self._stamp(actor, origin))

    def set_absence(self, policy: Policy, user: str, *, until: str | date | datetime,
                    start: str | date | datetime | None = None, backup: str | None = None,
                    message: str | None = None, actor: str, origin: str) -> Refinements:
        """Add one absence of the user's own; the policy's absences are never touched."""
        target = _user(policy, user)
        now = self.clock().replace(microsecond=0)
        problems: list[FieldProblem] = []
        begin = (_moment(policy, start, "absence.from", problems) if start is not None
                 else policy.local(now))
        end = _moment(policy, until, "absence.until", problems)
        lowest, highest = _years_from(now, -YEARS_BACK), _years_from(now, YEARS_AHEAD)
        if start is not None and begin is not None and not lowest <= begin <= highest:
            problems.append(_outside("absence.from", policy, begin, lowest, highest))
            begin = None
        if end is not None and end > highest:  # an end too early is "in the past", below
            problems.append(_outside("absence.until", policy, end, lowest, highest))
            end = None
        if begin is not None and end is not None:
            if end <= now:
                problems.append(FieldProblem("absence.until", (
                    f"{_shown(policy, end)} is in the past (now: "
                    f"{policy.local(now):%Y-%m-%d %H:%M %Z}); an absence must end later")))
            elif end <= begin:
                problems.append(FieldProblem("absence.until", (
                    f"ends ({policy.local(end):%Y-%m-%d %H:%M}) before it starts "
                    f"({policy.local(begin):%Y-%m-%d %H:%M}); give --until after --from")))
        if backup is not None and (msg := check_absence_backup(policy, target, backup)):
            problems.append(FieldProblem("absence.backup", msg))
        text = _message(message, problems)
        if problems:
            raise RefinementRefused(user, problems)
        assert begin is not None and end is not None
        new = NewAbsence(start=begin, until=end, backup=backup, message=text)

        def check(current: Refinements) -> list[FieldProblem]:
            return [FieldProblem("absence", (
                f"overlaps absence #{a.id} ({policy.local(a.start):%Y-%m-%d %H:%M} to "
                f"{policy.local(a.until):%Y-%m-%d %H:%M}) already set; clear it first "
                f"(mailcall absence clear {user} --id {a.id})"))
                for a in current.absences if begin < a.until and a.start < end]

        return self.backend.apply(user, Change(add_absences=(new,)),
                                  self._stamp(actor, origin), check)

    def clear_absences(self, policy: Policy, user: str, ids: Sequence[int] | None = None, *,
                       actor: str, origin: str) -> Refinements:
        """Remove the user's own absences (all when `ids` is None); the policy's stay."""
        _user(policy, user)
        wanted = None if ids is None else frozenset(ids)

        def check(current: Refinements) -> list[FieldProblem]:
            known = {a.id for a in current.absences}
            return [FieldProblem("absence.id", (
                f"#{i} is not an absence of '{user}' in the user store "
                f"(they have: {', '.join(f'#{k}' for k in sorted(known)) or 'none'}; "
                "absences written in the policy file are changed there)"))
                for i in sorted(wanted - known)] if wanted is not None else []

        return self.backend.apply(user, Change(remove_absences=wanted),
                                  self._stamp(actor, origin), check)

    def _stamp(self, actor: str, origin: str) -> Stamp:
        if origin not in ORIGINS:
            raise ValueError(f"origin must be one of {', '.join(ORIGINS)}, not {origin!r}")
        who = display_text(actor, 100).strip()
        if not who:
            raise ValueError("a change needs an actor (who made it) for the audit log")
        return Stamp(actor=who, at=self.clock().astimezone(UTC), origin=origin)


def _user(policy: Policy, user: str) -> User:
    try:
        return policy.users[user]
    except KeyError:
        raise RefinementRefused(user, [FieldProblem("user", (
            f"'{display_text(user, 60)}' is not a user of the policy file "
            f"({', '.join(policy.sources) or 'the policy'}); 'mailcall users' lists them"))]
        ) from None


def _moment(policy: Policy, value: Any, name: str, problems: list[FieldProblem]
            ) -> datetime | None:
    try:
        return parse_moment(value, policy)
    except ValueError as exc:
        problems.append(FieldProblem(name, str(exc)))
        return None


def _years_from(now: datetime, years: int) -> datetime:
    """`now` moved by whole years (29 February becomes the 28th in a common year)."""
    try:
        return now.replace(year=now.year + years)
    except ValueError:
        return now.replace(year=now.year + years, day=28)


def _shown(policy: Policy, moment: datetime) -> str:
    """`moment` as the user reads it; in its own offset when the local time is out of range."""
    try:
        moment = policy.local(moment)
    except OverflowError:
        pass
    return f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d} {moment:%H:%M}"


def _outside(name: str, policy: Policy, moment: datetime, lowest: datetime,
             highest: datetime) -> FieldProblem:
    return FieldProblem(name, (
        f"{_shown(policy, moment)} is not between {_shown(policy, lowest)} and "
        f"{_shown(policy, highest)} {policy.local(highest):%Z}; an absence must lie between "
        f"one year ago and {YEARS_AHEAD} years ahead"))


def _message(message: str | None, problems: list[FieldProblem]) -> str | None:
    if message is None or not message.strip():
        return None
    text = message.replace("\r\n", "\n").strip()
    hidden = next((c for c in text if c != "\n" and not c.isprintable()), None)
    if hidden is not None:
        problems.append(FieldProblem("absence.message", (
            f"must not contain control or invisible characters: found U+{ord(hidden):04X} at "
            f"character {text.index(hidden) + 1}")))
    if len(text) > MESSAGE_LIMIT:
        problems.append(FieldProblem("absence.message", (
            f"is {len(text)} characters long; at most {MESSAGE_LIMIT} (it is read aloud and "
            "sent as the auto-reply)")))
    return text


def _medium_left_out(user: User, combined: Mapping[str, Any]) -> list[FieldProblem]:
    media = combined["notify.media"]
    preferred = combined.get("preferred_medium") or user.preferred_medium
    if preferred and preferred not in media:
        whose = ("the user's preferred_medium" if "preferred_medium" in combined
                 else f"the preferred medium in the policy file (users.{user.id}.preferred_medium)")
        return [FieldProblem("notify.media", (
            f"leaves out '{preferred}', {whose}; set preferred_medium to one of "
            f"{', '.join(media)} in the same change"))]
    return []
