"""The people of a policy: ``[users]``, ``[groups]``, ``[[absences]]``, and the index of
who answers which extension, number, email and mobile.

Read after the organisation, schedules and profiles they refer to
(:mod:`mailcall.core.policy.compile` runs the sections in order). A user's
overrides may only narrow what their profile grants; a user with a bad field is
still compiled from its good fields, so that every problem is listed at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC
from typing import Any

from mailcall.core.contracts import Medium
from mailcall.core.policy import features as feat
from mailcall.core.policy.backup_graph import is_target
from mailcall.core.policy.media_schema import declared_value, medium_address, medium_user_keys
from mailcall.core.policy.model import (
    Absence,
    ChannelSettings,
    Group,
    Organisation,
    Profile,
    Schedule,
    User,
)
from mailcall.core.policy.pins import is_pin_hash
from mailcall.core.policy.references import known, reference
from mailcall.core.policy.value_checks import LANGUAGES, Checker, Path, Vocabulary

_USER_KEYS = ("name", "email", "profile", "extensions", "numbers", "mobile", "preferred_medium",
              "backups", "pin", "overrides", "language", "schedule")


def read_users(check: Checker, table: dict[str, Any],
               profiles: dict[str, tuple[Profile, feat.Flat]], schedules: dict[str, Schedule],
               country: str, language: str, channels: ChannelSettings,
               media: Mapping[str, Medium]) -> dict[str, User]:
    out: dict[str, User] = {}
    extra = medium_user_keys(check, media, _USER_KEYS)
    allowed = (*_USER_KEYS, *extra)
    for uid, body in table.items():
        path: Path = ("users", uid)
        if check.identifier(uid, path) is None:
            continue
        t = check.table(body, path, allowed, required=("name", "email", "profile"))
        if not t:
            continue
        profile_name = reference(check, t, "profile", path, "a profile name")
        if profile_name is not None and profile_name not in profiles:
            check.error((*path, "profile"), f"profile '{profile_name}' is not defined"
                        f"{known(profiles)}")
            continue
        if profile_name is None:
            continue
        profile, granted = profiles[profile_name]
        flat = dict(granted)
        overrides = feat.parse(check, t.get("overrides", {}), (*path, "overrides"))
        for key, v in overrides.items():
            kpath = (*path, "overrides", *key)
            if key[0] in profile.locked:
                check.error(kpath, f"profile '{profile_name}' locks '{key[0]}': users may not "
                            "change it (ask IT to change the profile)")
            elif not feat.narrower(granted[key], v, feat.spec_of(key)):
                check.error(kpath, f"asks for more than profile '{profile_name}' grants "
                            f"({feat.render(key)} = {granted[key]!r}); a user may only narrow "
                            "a profile: remove the override or change the profile")
            else:
                flat[key] = v
        # Users who refine nothing share their profile's Features object: at 100,000 users
        # this is most of the policy's memory and a good share of its compile time.
        features = profile.features if flat == granted else feat.build(flat)
        mobile = check.phone(t["mobile"], (*path, "mobile"), country) if "mobile" in t else None
        email = check.email(t["email"], (*path, "email")) if "email" in t else None
        own = {key: declared_value(check, media[m].address.setting, t[key], (*path, key))  # type: ignore[union-attr]
               for key, m in extra.items() if key in t}
        preferred = (check.choice(t["preferred_medium"], (*path, "preferred_medium"),
                                  Vocabulary.MEDIA) if "preferred_medium" in t else None)
        medium = preferred
        if medium is None and (features.notify.mail or features.notify.voicemail):
            medium = features.notify.media[0] if features.notify.media else None
        address = ""
        if medium is not None:
            address = medium_address(check, (*path, "preferred_medium"), media.get(medium),
                                     medium, features, profile_name,
                                     {"mobile": mobile, "email": email, **own}, channels) or ""
        pin = t.get("pin")
        if pin is not None and not (isinstance(pin, str) and is_pin_hash(pin)):
            check.error((*path, "pin"), "must be a PIN hash, never the PIN itself: run "
                        "'mailcall hash-pin' and paste what it prints")
            pin = None
        schedule = reference(check, t, "schedule", path, "a schedule name")
        if schedule is not None and schedule not in schedules:
            check.error((*path, "schedule"), f"schedule '{schedule}' is not defined"
                        f"{known(schedules)}")
        name = check.string(t["name"], (*path, "name")) if "name" in t else None
        exts = check.strings(t.get("extensions", []), (*path, "extensions"), check.extension)
        nums = check.strings(t.get("numbers", []), (*path, "numbers"),
                             lambda v, p: check.phone(v, p, country))
        backups = check.strings(t.get("backups", []), (*path, "backups"))
        lang = check.choice(t.get("language", language), (*path, "language"), LANGUAGES)
        # A user with a bad field is still compiled from its good fields, so that its
        # backups and extensions are checked too; the bad field already made this policy fail.
        out[uid] = User(id=uid, name=name or uid, email=(email or "").lower(),
                        profile=profile_name, features=features, extensions=exts or (),
                        numbers=nums or (), mobile=mobile, preferred_medium=preferred,
                        notify_address=address, backups=backups or (), pin_hash=pin,
                        language=lang or language, schedule=schedule)
    return out


def read_groups(check: Checker, value: Any, users: frozenset[str],
                schedules: dict[str, Schedule], country: str) -> dict[str, Group]:
    table = check.typed(value, ("groups",), dict, "a table of groups") or {}
    out: dict[str, Group] = {}
    for gid, body in table.items():
        path: Path = ("groups", gid)
        if check.identifier(gid, path) is None:
            continue
        t = check.table(body, path, ("name", "members", "strategy", "ring_time", "overflow",
                                     "mailbox", "extensions", "numbers", "schedule"),
                        required=("members",))
        members = check.strings(t.get("members", []), (*path, "members"), nonempty=True) or ()
        for i, m in enumerate(members):
            if m not in users:
                check.error((*path, "members", str(i)), f"user '{m}' is not defined")
        mailbox = reference(check, t, "mailbox", path, "a user id")
        if mailbox is not None and mailbox not in users:
            check.error((*path, "mailbox"), f"user '{mailbox}' is not defined")
        schedule = reference(check, t, "schedule", path, "a schedule name")
        if schedule is not None and schedule not in schedules:
            check.error((*path, "schedule"), f"schedule '{schedule}' is not defined"
                        f"{known(schedules)}")
        out[gid] = Group(
            id=gid,
            name=check.string(t.get("name", gid), (*path, "name")) or gid,
            members=members,
            strategy=check.choice(t.get("strategy", "all"), (*path, "strategy"),
                                  ("all", "in-order")) or "all",
            ring_time=check.integer(t.get("ring_time", 20), (*path, "ring_time"), 5, 300) or 20,
            overflow=reference(check, t, "overflow", path, 'a user id or "@group"'),
            mailbox=mailbox,
            extensions=check.strings(t.get("extensions", []), (*path, "extensions"),
                                     check.extension) or (),
            numbers=check.strings(t.get("numbers", []), (*path, "numbers"),
                                  lambda v, p: check.phone(v, p, country)) or (),
            schedule=schedule,
        )
    return out


FIRST_YEAR, LAST_YEAR = 1971, 9998
"""The years an absence written by IT may fall in (the store has its own, narrower window)."""


def read_absences(check: Checker, value: Any, users: frozenset[str], groups: frozenset[str],
                  org: Organisation | None) -> dict[str, tuple[Absence, ...]]:
    items = check.typed(value, ("absences",), list, "a list of [[absences]] tables") or []
    # Without a valid organisation there is no time zone, and the policy is rejected
    # anyway; UTC still lets a time written with an offset be compared with one without.
    tz = org.timezone if org else UTC
    out: dict[str, list[Absence]] = {}
    for i, body in enumerate(items):
        path: Path = ("absences", str(i))
        t = check.table(body, path, ("user", "from", "until", "backup", "message"),
                        required=("user", "from", "until"))
        if not {"user", "from", "until"} <= set(t):
            continue
        user = reference(check, t, "user", path, "a user id")
        if user is None:
            continue
        if user not in users:
            check.error((*path, "user"), f"user '{user}' is not defined")
            continue
        start = check.moment(t["from"], (*path, "from"), tz)
        until = check.moment(t["until"], (*path, "until"), tz)
        if start is None or until is None:
            continue
        far = [(key, when) for key, when in (("from", start), ("until", until))
               if not FIRST_YEAR <= when.year <= LAST_YEAR]
        for key, when in far:  # Sieve's UTC dates and the spoken dates overflow near 1 and 9999
            check.error((*path, key), f"{when:%Y-%m-%d} is not a date an absence can use "
                        f"(years {FIRST_YEAR} to {LAST_YEAR}); write the real dates")
        if far:
            continue
        if until <= start:
            check.error((*path, "until"), f"ends ({until:%Y-%m-%d %H:%M}) before it starts "
                        f"({start:%Y-%m-%d %H:%M})")
            continue
        backup = t.get("backup")
        if backup is not None and not is_target(backup, users, groups):
            check.error((*path, "backup"), f"'{backup}' is not a defined user or @group")
            backup = None
        if backup == user:
            check.error((*path, "backup"), "an absent user cannot be their own backup")
        message = (check.string(t["message"], (*path, "message"), lines=True)
                   if "message" in t else None)
        for other in out.get(user, []):
            if start < other.until and other.start < until:
                check.error(path, f"overlaps another absence of '{user}' "
                            f"({other.start:%Y-%m-%d} to {other.until:%Y-%m-%d})")
        out.setdefault(user, []).append(Absence(user=user, start=start, until=until,
                                                backup=backup, message=message))
    return {u: tuple(sorted(a, key=lambda x: x.start)) for u, a in out.items()}


def build_index(check: Checker, users: dict[str, User], groups: dict[str, Group]
                ) -> dict[str, dict]:
    index: dict[str, dict[str, str]] = {"extension": {}, "number": {}, "email": {}, "mobile": {}}

    def add(kind: str, key: str, owner: str, path: Path) -> None:
        other = index[kind].get(key)
        if other is not None and other != owner:
            check.error(path, f"{kind} {key} is already used by {other}")
        else:
            index[kind][key] = owner

    for uid, u in users.items():
        for e in u.extensions:
            add("extension", e, uid, ("users", uid, "extensions"))
        for n in u.numbers:
            add("number", n, uid, ("users", uid, "numbers"))
        if u.email:
            add("email", u.email, uid, ("users", uid, "email"))
        if u.mobile:
            add("mobile", u.mobile, uid, ("users", uid, "mobile"))
    for gid, g in groups.items():
        for e in g.extensions:
            add("extension", e, f"@{gid}", ("groups", gid, "extensions"))
        for n in g.numbers:
            add("number", n, f"@{gid}", ("groups", gid, "numbers"))
    return index
