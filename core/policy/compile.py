"""Turning raw policy tables into a validated, immutable, indexed Policy.

Compilation is all-or-nothing: it either returns a complete snapshot or raises
PolicyInvalid with every problem found, so a broken edit can never be half
applied to a running server. This module reads the sections in order and builds
the snapshot; the keys of the fixed sections are read by section_keys.py, what
the media declare is checked by media_schema.py, the users, groups and absences
by people.py, and backups and overflows by backup_graph.py.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Any

from mailcall.core.contracts import Offered
from mailcall.core.errors import PolicyInvalid
from mailcall.core.policy import features as feat
from mailcall.core.policy.backup_graph import check_references, loop_text
from mailcall.core.policy.files import RawPolicy
from mailcall.core.policy.media_schema import check_relay, read_channels
from mailcall.core.policy.model import (
    DeliverySettings,
    MailSettings,
    Organisation,
    Policy,
    Profile,
    Schedule,
    ServerSettings,
    Telephony,
)
from mailcall.core.policy.people import build_index, read_absences, read_groups, read_users
from mailcall.core.policy.references import known
from mailcall.core.policy.section_keys import (
    DELIVERY_KEYS,
    MAIL_KEYS,
    SERVER_KEYS,
    TELEPHONY_KEYS,
    read_section,
)
from mailcall.core.policy.value_checks import LANGUAGES, Checker, Path

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
    users = read_users(check, users_raw, profiles, schedules, country,
                   org.language if org else "en", channels, offered.media)
    # References are checked against every id written, valid or not, so one bad field of a
    # user does not cascade into "user not defined" everywhere that user is named.
    user_ids = frozenset(users_raw)
    group_ids = frozenset(data["groups"]) if isinstance(data.get("groups"), dict) else frozenset()
    groups = read_groups(check, data.get("groups", {}), user_ids, schedules, country)
    absences = read_absences(check, data.get("absences", []), user_ids, group_ids, org)

    if org and org.admins:
        _check_admins(check, org.admins, user_ids)
    if org and org.schedule and org.schedule not in schedules:
        check.error(("organisation", "schedule"), f"schedule '{org.schedule}' is not defined "
                    f"under [schedules]{known(schedules)}")
    check_references(check, users, groups, user_ids, group_ids)
    index = build_index(check, users, groups)

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


def _organisation(check: Checker, value: Any, defaults: dict[str, Any]) -> Organisation | None:
    path: Path = ("organisation",)
    t = check.table(value, path, ("name", "domain", "timezone", "language", "country", "schedule",
                                  "admins"), required=("name", "domain"))
    merged = {**defaults, **t}
    name = check.string(merged.get("name", ""), (*path, "name")) if "name" in t else None
    domain = check.domain(merged["domain"], (*path, "domain")) if "domain" in t else None
    tz = check.timezone(merged["timezone"], (*path, "timezone"))
    language = check.choice(merged["language"], (*path, "language"), LANGUAGES)
    country = check.country(merged["country"], (*path, "country"))
    schedule = (check.identifier(merged["schedule"], (*path, "schedule"))
                if "schedule" in t else None)
    admins = check.strings(t.get("admins", []), (*path, "admins"), check.identifier)
    if None in (name, domain, tz, language, country, admins):
        return None
    return Organisation(name=name, domain=domain, timezone=tz, language=language, country=country,
                        schedule=schedule, admins=tuple(admins or ()))


def _check_admins(check: Checker, admins: tuple[str, ...], user_ids: frozenset[str]) -> None:
    """Each admin is a user (of the file or the directory): IT's view is given by user id."""
    for i, uid in enumerate(admins):
        if uid not in user_ids:
            check.error(("organisation", "admins", str(i)),
                        f"user '{uid}' is not defined: admins are user ids of [users] (or of "
                        "the directory), who log in to the web page with their own mail "
                        "password")


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
                check.error(path, f"profile '{parent}' is not defined{known(parsed)}")
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
