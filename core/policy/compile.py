"""Turning raw policy tables into a validated, immutable, indexed Policy.

Compilation is all-or-nothing: it either returns a complete snapshot or raises
PolicyInvalid with every problem found, so a broken edit can never be half
applied to a running server. This module reads the sections in order and builds
the snapshot; the keys of the fixed sections are read by section_keys.py, what
the media declare is checked by media_schema.py, and backups and overflows by
backup_graph.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC
from types import MappingProxyType
from typing import Any

from mailcall.core.contracts import Medium, Offered
from mailcall.core.errors import PolicyInvalid
from mailcall.core.policy import features as feat
from mailcall.core.policy.backup_graph import check_references, is_target, loop_text
from mailcall.core.policy.files import RawPolicy
from mailcall.core.policy.media_schema import (
    check_relay,
    declared_value,
    medium_address,
    medium_user_keys,
    read_channels,
)
from mailcall.core.policy.model import (
    Absence,
    ChannelSettings,
    DeliverySettings,
    Group,
    MailSettings,
    Organisation,
    Policy,
    Profile,
    Schedule,
    ServerSettings,
    Telephony,
    User,
)
from mailcall.core.policy.pins import is_pin_hash
from mailcall.core.policy.section_keys import (
    DELIVERY_KEYS,
    MAIL_KEYS,
    SERVER_KEYS,
    TELEPHONY_KEYS,
    read_section,
)
from mailcall.core.policy.value_checks import LANGUAGES, Checker, Path, Vocabulary

TOP = ("organisation", "telephony", "mail", "server", "delivery", "channels", "schedules",
       "profiles", "users", "groups", "absences")
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def compile_policy(raw: RawPolicy, directory_users: Iterable[Mapping[str, Any]] = (), *,
                   offered: Offered) -> Policy:
    """Validate and compile; raises PolicyInvalid listing every problem.

    `offered` is what the installed plugins declare (media and their settings,
    audio and fax formats): names outside it are problems of this policy.
    """
    check = Checker(raw, offered)
    data = check.table(raw.data, (), TOP, required=("organisation",))
    defaults = feat.load_defaults()
    users_raw = dict(check.typed(data.get("users", {}), ("users",), dict,
                                 "a table of users ([users.ID])") or {})
    for entry in directory_users:
        uid = entry.get("id") if isinstance(entry, Mapping) else None
        if not isinstance(uid, str) or uid in users_raw:
            check.error(("users", str(uid)), "a directory plugin returned a user that is missing "
                        "an id or is already defined in the policy file")
            continue
        users_raw[uid] = {k: v for k, v in entry.items() if k != "id"}

    org = _organisation(check, data.get("organisation", {}), defaults["organisation"])
    country = org.country if org else "FR"
    telephony = read_section(check, data.get("telephony", {}), ("telephony",),
                             defaults["telephony"], TELEPHONY_KEYS, Telephony)
    mail = read_section(check, data.get("mail", {}), ("mail",), defaults["mail"], MAIL_KEYS,
                        MailSettings)
    server = read_section(check, data.get("server", {}), ("server",), defaults["server"],
                          SERVER_KEYS, ServerSettings)
    delivery = read_section(check, data.get("delivery", {}), ("delivery",), defaults["delivery"],
                            DELIVERY_KEYS, DeliverySettings)
    channels = read_channels(check, data.get("channels", {}), defaults["channels"], offered.media)
    check_relay(check, channels, delivery)
    schedules = _schedules(check, data.get("schedules", {}))
    # mailcall's own defaults name "wav" and "sms" whether or not a plugin offers them: they
    # are checked where a profile or user ends up using them, not as the defaults file.
    defaults_check = Checker(raw)
    base = feat.parse(defaults_check, defaults["features"], ("defaults",))
    check.problems += defaults_check.problems
    profiles = _profiles(check, data.get("profiles", {}), base)
    users = _users(check, users_raw, profiles, schedules, country,
                   org.language if org else "en", channels, offered.media)
    # References are checked against every id written, valid or not, so one bad field of a
    # user does not cascade into "user not defined" everywhere that user is named.
    user_ids = frozenset(users_raw)
    group_ids = frozenset(data["groups"]) if isinstance(data.get("groups"), dict) else frozenset()
    groups = _groups(check, data.get("groups", {}), user_ids, schedules, country)
    absences = _absences(check, data.get("absences", []), user_ids, group_ids, org)

    if org and org.schedule and org.schedule not in schedules:
        check.error(("organisation", "schedule"), f"schedule '{org.schedule}' is not defined "
                    f"under [schedules]{_known(schedules)}")
    check_references(check, users, groups, user_ids, group_ids)
    index = _index(check, users, groups)

    if check.problems or org is None:
        raise PolicyInvalid(check.problems)
    return Policy(
        organisation=org, telephony=telephony, mail=mail, server=server, delivery=delivery,
        channels=channels,
        schedules=MappingProxyType(schedules),
        profiles=MappingProxyType({n: p for n, (p, _) in profiles.items()}),
        users=MappingProxyType(users), groups=MappingProxyType(groups),
        absences=MappingProxyType(absences),
        by_extension=MappingProxyType(index["extension"]),
        by_number=MappingProxyType(index["number"]),
        by_email=MappingProxyType(index["email"]),
        by_mobile=MappingProxyType(index["mobile"]),
        sources=tuple(raw.files),
    )


def _reference(check: Checker, t: dict[str, Any], key: str, path: Path, what: str) -> str | None:
    """The name `t[key]` refers to, or None (absent, or not a string: problem recorded).

    Only a string can name something; a list or table there must be reported, not
    looked up (it cannot even be a dictionary key).
    """
    if key not in t:
        return None
    return check.typed(t[key], (*path, key), str, what)


def _known(names: Iterable[str]) -> str:
    names = sorted(names)
    return f" (defined: {', '.join(names)})" if names else " (none is defined)"


def _organisation(check: Checker, value: Any, defaults: dict[str, Any]) -> Organisation | None:
    path: Path = ("organisation",)
    t = check.table(value, path, ("name", "domain", "timezone", "language", "country", "schedule"),
                    required=("name", "domain"))
    merged = {**defaults, **t}
    name = check.string(merged.get("name", ""), (*path, "name")) if "name" in t else None
    domain = check.domain(merged["domain"], (*path, "domain")) if "domain" in t else None
    tz = check.timezone(merged["timezone"], (*path, "timezone"))
    language = check.choice(merged["language"], (*path, "language"), LANGUAGES)
    country = check.country(merged["country"], (*path, "country"))
    schedule = (check.identifier(merged["schedule"], (*path, "schedule"))
                if "schedule" in t else None)
    if None in (name, domain, tz, language, country):
        return None
    return Organisation(name=name, domain=domain, timezone=tz, language=language, country=country,
                        schedule=schedule)


def _schedules(check: Checker, value: Any) -> dict[str, Schedule]:
    out: dict[str, Schedule] = {}
    table = check.typed(value, ("schedules",), dict, "a table of schedules") or {}
    for name, body in table.items():
        path: Path = ("schedules", name)
        if check.identifier(name, path) is None:
            continue
        t = check.table(body, path, (*DAYS, "holidays"))
        before = len(check.problems)
        week = []
        for day in DAYS:
            ranges = check.time_ranges(t[day], (*path, day)) if day in t else ()
            week.append(ranges or ())
        holidays = check.strings(t.get("holidays", []), (*path, "holidays"), check.day) or ()
        if not any(week) and len(check.problems) == before:
            check.error(path, "is never open: give at least one day opening hours")
        out[name] = Schedule(name=name, week=tuple(week), holidays=frozenset(holidays))
    return out


def _profiles(check: Checker, value: Any, base: feat.Flat) -> dict[str, tuple[Profile, feat.Flat]]:
    table = check.typed(value, ("profiles",), dict, "a table of profiles") or {}
    parsed: dict[str, dict[str, Any]] = {}
    for name, body in table.items():
        path: Path = ("profiles", name)
        if check.identifier(name, path) is None:
            continue
        t = check.table(body, path, ("description", "extends", "features", "locked"))
        locked = check.choices(t.get("locked", []), (*path, "locked"), feat.FEATURE_NAMES) or ()
        parsed[name] = {
            "description": check.string(t.get("description", ""), (*path, "description"),
                                        empty=True, lines=True) or "",
            "extends": t.get("extends"),
            "features": feat.parse(check, t.get("features", {}), (*path, "features")),
            "locked": frozenset(locked),
        }
    out: dict[str, tuple[Profile, feat.Flat]] = {}
    failed: set[str] = set()
    for name in parsed:
        # Up the `extends` chain to a profile already built (or to the top), then build
        # back down: a loop, not recursion, so that no chain is too long to check.
        walk: list[str] = []
        at: Any = name
        while at is not None and at not in out:
            path = ("profiles", at, "extends")
            if at in failed:
                break
            if at in walk:
                loop = loop_text((*walk[walk.index(at):], at))
                check.error(path, f"'extends' loops: {loop}; a profile cannot extend itself")
                break
            walk.append(at)
            parent = parsed[at]["extends"]
            if parent is not None and check.typed(parent, path, str, "a profile name") is None:
                break
            if parent is not None and parent not in parsed:
                check.error(path, f"profile '{parent}' is not defined{_known(parsed)}")
                break
            at = parent
        else:
            for n in reversed(walk):
                p = parsed[n]
                parent = p["extends"]
                flat = dict(base if parent is None else out[parent][1])
                flat.update(p["features"])
                locked = (frozenset() if parent is None else out[parent][0].locked) | p["locked"]
                out[n] = (Profile(name=n, description=p["description"], extends=parent,
                                  features=feat.build(flat), locked=locked), flat)
            continue
        failed.update(walk)  # reported once, where the chain breaks; not again from below
    return out


_USER_KEYS = ("name", "email", "profile", "extensions", "numbers", "mobile", "preferred_medium",
              "backups", "pin", "overrides", "language", "schedule")


def _users(check: Checker, table: dict[str, Any], profiles: dict[str, tuple[Profile, feat.Flat]],
           schedules: dict[str, Schedule], country: str, language: str,
           channels: ChannelSettings, media: Mapping[str, Medium]) -> dict[str, User]:
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
        profile_name = _reference(check, t, "profile", path, "a profile name")
        if profile_name is not None and profile_name not in profiles:
            check.error((*path, "profile"), f"profile '{profile_name}' is not defined"
                        f"{_known(profiles)}")
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
        schedule = _reference(check, t, "schedule", path, "a schedule name")
        if schedule is not None and schedule not in schedules:
            check.error((*path, "schedule"), f"schedule '{schedule}' is not defined"
                        f"{_known(schedules)}")
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


def _groups(check: Checker, value: Any, users: frozenset[str], schedules: dict[str, Schedule],
            country: str) -> dict[str, Group]:
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
        mailbox = _reference(check, t, "mailbox", path, "a user id")
        if mailbox is not None and mailbox not in users:
            check.error((*path, "mailbox"), f"user '{mailbox}' is not defined")
        schedule = _reference(check, t, "schedule", path, "a schedule name")
        if schedule is not None and schedule not in schedules:
            check.error((*path, "schedule"), f"schedule '{schedule}' is not defined"
                        f"{_known(schedules)}")
        out[gid] = Group(
            id=gid,
            name=check.string(t.get("name", gid), (*path, "name")) or gid,
            members=members,
            strategy=check.choice(t.get("strategy", "all"), (*path, "strategy"),
                                  ("all", "in-order")) or "all",
            ring_time=check.integer(t.get("ring_time", 20), (*path, "ring_time"), 5, 300) or 20,
            overflow=_reference(check, t, "overflow", path, 'a user id or "@group"'),
            mailbox=mailbox,
            extensions=check.strings(t.get("extensions", []), (*path, "extensions"),
                                     check.extension) or (),
            numbers=check.strings(t.get("numbers", []), (*path, "numbers"),
                                  lambda v, p: check.phone(v, p, country)) or (),
            schedule=schedule,
        )
    return out


def _absences(check: Checker, value: Any, users: frozenset[str], groups: frozenset[str],
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
        user = _reference(check, t, "user", path, "a user id")
        if user is None:
            continue
        if user not in users:
            check.error((*path, "user"), f"user '{user}' is not defined")
            continue
        start = check.moment(t["from"], (*path, "from"), tz)
        until = check.moment(t["until"], (*path, "until"), tz)
        if start is None or until is None:
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


def _index(check: Checker, users: dict[str, User], groups: dict[str, Group]) -> dict[str, dict]:
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
