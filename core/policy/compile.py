"""Turning raw policy tables into a validated, immutable, indexed Policy.

Compilation is all-or-nothing: it either returns a complete snapshot or raises
PolicyInvalid with every problem found, so a broken edit can never be half
applied to a running server.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC
from types import MappingProxyType
from typing import Any

from mailcall.core.contracts import FromSetting, Medium, Offered, Setting, UserField, UserKey
from mailcall.core.errors import PolicyInvalid
from mailcall.core.policy import features as feat
from mailcall.core.policy.files import RawPolicy
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
    telephony = _settings(check, data.get("telephony", {}), ("telephony",), defaults["telephony"],
                          _TELEPHONY, Telephony)
    mail = _settings(check, data.get("mail", {}), ("mail",), defaults["mail"], _MAIL, MailSettings)
    server = _settings(check, data.get("server", {}), ("server",), defaults["server"], _SERVER,
                       ServerSettings)
    delivery = _settings(check, data.get("delivery", {}), ("delivery",), defaults["delivery"],
                         _DELIVERY, DeliverySettings)
    channels = _channels(check, data.get("channels", {}), defaults["channels"], offered.media)
    _check_relay(check, channels, delivery)
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
    _check_references(check, users, groups, user_ids, group_ids)
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


def _template(field: str):
    def one(check: Checker, v: Any, p: Path) -> str | None:
        s = check.string(v, p)
        if s is not None and "{" + field + "}" not in s:
            check.error(p, f"must contain {{{field}}}, where mailcall puts the {field}")
            return None
        if s is not None and any(c in s for c in "\"\\,|&;\n"):
            check.error(p, "must not contain quotes, backslashes, commas, '|', '&' or ';': "
                           "mailcall builds the Dial() argument from it")
            return None
        return s
    return one


def _int(low: int, high: int):
    return lambda check, v, p: check.integer(v, p, low, high)


def _choice(*options: str):
    return lambda check, v, p: check.choice(v, p, options)


def _str(check: Checker, v: Any, p: Path) -> str | None:
    return check.string(v, p)


def _listen(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    if s is None:
        return None
    host, sep, port = s.rpartition(":")
    # ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "٤" (which
    # int() reads as 4, leaving a port the socket layer never sees written that way).
    if (not sep or not host or not (port.isascii() and port.isdigit())
            or not 0 < int(port) < 65536):
        check.error(p, f"'{s}' is not HOST:PORT, e.g. 127.0.0.1:4573")
        return None
    return s


def _address(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    if s is None:
        return None
    if s.startswith("unix:"):
        if not s[5:].startswith("/"):
            check.error(p, f"'{s}': a UNIX socket must be an absolute path, "
                           "e.g. unix:/run/dovecot/lmtp")
            return None
        return s
    return _listen(check, s, p)


def _sender_address(check: Checker, v: Any, p: Path) -> str | None:
    if v == "":
        return ""
    return check.email(v, p)


_RELAY = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")


def _relay(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    if s is None:
        return None
    match = _RELAY.fullmatch(s)
    if match is None or not 0 < int(match.group(1)) < 65536:
        check.error(p, f"'{s}' is not HOST:PORT of an SMTP server, e.g. 127.0.0.1:25 (the "
                       "local MTA) or [::1]:25; it takes the mail mailcall sends out "
                       "(SMS-gateway mails, e-mail notices)")
        return None
    return s


def _url(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    if s is not None and not s.startswith(("http://", "https://")):
        check.error(p, f"'{s}' must be an http:// or https:// URL")
        return None
    return s


def _line_limit(check: Checker, v: Any, p: Path) -> int | None:
    if type(v) is not int or v not in (2048, 8192):
        check.error(p, f"must be 2048 (Asterisk before 20.16, 21.11, 22.6) or 8192, not {v!r}")
        return None
    return v


_TELEPHONY = {"endpoint": _template("extension"), "external": _template("number"),
              "ring_time": _int(5, 300), "max_steps": _int(1, 32)}
_MAIL = {"voice_folder": _str, "fax_folder": _str, "auto_reply_days": _int(1, 30)}
def agi_path_problem(value: str) -> str | None:
    """Why `value` cannot be a directory Asterisk records into or plays from, or None."""
    if not value.startswith("/"):
        return "must be an absolute path"
    if any(c.isspace() or c in "\"'\\" for c in value):
        return ("must not contain spaces, quotes or backslashes: Asterisk's AGI takes file "
                "names as single words")
    return None


def _agi_dir(check: Checker, v: Any, p: Path) -> str | None:
    s = check.string(v, p)
    problem = agi_path_problem(s) if s is not None else None
    if problem:
        check.error(p, f"'{s}' {problem}")
        return None
    return s


_SERVER = {"agi_listen": _listen, "spool_dir": _agi_dir, "greetings_dir": _agi_dir,
           "sieve_socket": _str,
           "max_agi_sessions": _int(1, 100000), "agi_line_limit": _line_limit}
_DELIVERY = {"method": _choice("lmtp", "smtp"), "address": _address, "sender": _sender_address}
_CHANNELS_COMMON = {"rate_limit_per_hour": _int(1, 10000), "relay": _relay}
"""The [channels] keys every medium shares; each medium's own come from its declaration."""


def _channels(check: Checker, value: Any, defaults: dict[str, Any],
              media: Mapping[str, Medium]) -> ChannelSettings:
    """[channels]: the shared keys, and each declared medium's settings.

    A medium's key is written ``[channels.sms] gateway`` or, flat, ``[channels]
    sms_gateway``: one rule for every medium, built in or not.
    """
    path: Path = ("channels",)
    if not isinstance(value, dict):
        value = check.table(value, path, ())  # reports "must be a table"
    flat = {f"{m}_{s.name}": (m, s.name) for m, medium in media.items() for s in medium.settings}
    common = {k: v for k, v in defaults.items() if k in _CHANNELS_COMMON}
    written: dict[str, dict[str, tuple[Any, Path]]] = {m: {} for m in media}

    def put(medium: str, name: str, v: Any, p: Path) -> None:
        if name in written[medium]:
            check.error(p, f"is set twice, as [channels.{medium}] {name} and [channels] "
                           f"{medium}_{name}: keep one")
        written[medium][name] = (v, p)

    for key, v in value.items():
        kpath = (*path, key)
        if key in _CHANNELS_COMMON:
            got = _CHANNELS_COMMON[key](check, v, kpath)
            if got is not None:
                common[key] = got
        elif key in media:
            names = [s.name for s in media[key].settings]
            for name, sv in check.table(v, kpath, names).items():
                put(key, name, sv, (*kpath, name))
        elif key in flat:
            put(*flat[key], v, kpath)
        elif isinstance(v, dict):
            check.error(kpath, f"no installed plugin offers the medium '{key}' (offered: "
                        f"{', '.join(media) or 'none'}): install the plugin that adds it, or "
                        f"remove [channels.{key}]")
        else:
            check.table({key: v}, path, [*_CHANNELS_COMMON, *media, *flat])
    settings: dict[str, MappingProxyType] = {}
    for m, medium in media.items():
        got: dict[str, Any] = {}
        for setting in medium.settings:
            if setting.name in written[m]:
                v, p = written[m][setting.name]
                converted = _declared(check, setting, v, p)
                if converted is not None:
                    got[setting.name] = converted
            elif setting.default is not None:
                got[setting.name] = setting.default
        if medium.checks is not None and len(got) == len(
                [s for s in medium.settings if s.name in written[m] or s.default is not None]):
            try:
                problems = medium.checks(MappingProxyType(got))
            except Exception as exc:
                problems = [f"the plugin of medium '{m}' failed checking its settings "
                            f"({exc!r}): fix or disable that plugin"]
            for problem in problems:
                key, sep, message = problem.partition(":")
                if sep and key.strip() in written[m]:
                    check.error(written[m][key.strip()][1], message.strip())
                else:
                    check.error((*path, m), problem)
        settings[m] = MappingProxyType(got)
    return ChannelSettings(**common, media=MappingProxyType(settings))


def _declared(check: Checker, setting: Setting, v: Any, p: Path) -> Any:
    """A value of a key a plugin declared: its kind checked by the core, then the plugin's rule."""
    kind = setting.kind
    if kind == "url":
        got = _url(check, v, p)
    elif kind == "path":
        got = check.string(v, p)
        if got is not None and not got.startswith("/"):
            check.error(p, f"'{got}' must be an absolute path")
            got = None
    elif kind in ("number", "integer"):
        low = setting.low if setting.low is not None else float("-inf")
        high = setting.high if setting.high is not None else float("inf")
        got = (check.number(v, p, low, high) if kind == "number"
               else check.integer(v, p, low, high))  # type: ignore[arg-type]
    elif kind == "boolean":
        got = check.boolean(v, p)
    else:
        got = check.string(v, p)
    if got is not None and setting.validate is not None:
        try:
            problem = setting.validate(got)
        except Exception as exc:
            problem = (f"the plugin that declares this key failed checking it ({exc!r}): fix "
                       "or disable that plugin")
        if problem:
            check.error(p, problem)
            return None
    return got


def _check_relay(check: Checker, channels: ChannelSettings, delivery: DeliverySettings) -> None:
    """The relay takes mail for the outside; Dovecot's LMTP refuses any non-local address."""
    if delivery.method == "lmtp" and channels.relay == delivery.address:
        check.error(("channels", "relay"),
                    f"'{channels.relay}' is [delivery] address, Dovecot's LMTP: it answers 550 "
                    "to SMS-gateway and outside addresses. Set relay to your MTA's SMTP "
                    "port (e.g. 127.0.0.1:25)")


def _settings(check: Checker, value: Any, path: Path, defaults: dict[str, Any],
              fields: dict[str, Any], cls: type) -> Any:
    t = check.table(value, path, fields)
    out = {}
    for key, conv in fields.items():
        if key in t:
            got = conv(check, t[key], (*path, key))
            if got is not None:
                out[key] = got
        elif key in defaults:
            out[key] = defaults[key]
    return cls(**out)


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
                loop = _chain((*walk[walk.index(at):], at))
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


def _chain(names: Sequence[str]) -> str:
    """`a → b → a`, for a loop in a message; a long one keeps its first 5 and last 4 names."""
    if len(names) > 12:
        names = [*names[:5], f"… {len(names) - 9} more", *names[-4:]]
    return " → ".join(names)


_USER_KEYS = ("name", "email", "profile", "extensions", "numbers", "mobile", "preferred_medium",
              "backups", "pin", "overrides", "language", "schedule")


def _user_keys(check: Checker, media: Mapping[str, Medium]) -> dict[str, str]:
    """Keys of [users.ID] the media add (key -> medium); one clashing with another is refused."""
    out: dict[str, str] = {}
    for m, medium in media.items():
        if not isinstance(medium.address, UserKey):
            continue
        key = medium.address.setting.name
        if key in _USER_KEYS or key in out:
            check.error(("users",), f"the plugin of medium '{m}' declares the user key '{key}', "
                        f"already {'a key of mailcall' if key in _USER_KEYS else 'declared by '}"
                        f"{'' if key in _USER_KEYS else repr(out[key])}: the plugin must "
                        "rename it (ask its author), or disable one of the plugins")
            continue
        out[key] = m
    return out


def _users(check: Checker, table: dict[str, Any], profiles: dict[str, tuple[Profile, feat.Flat]],
           schedules: dict[str, Schedule], country: str, language: str,
           channels: ChannelSettings, media: Mapping[str, Medium]) -> dict[str, User]:
    out: dict[str, User] = {}
    extra = _user_keys(check, media)
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
        own = {key: _declared(check, media[m].address.setting, t[key], (*path, key))  # type: ignore[union-attr]
               for key, m in extra.items() if key in t}
        preferred = (check.choice(t["preferred_medium"], (*path, "preferred_medium"),
                                  Vocabulary.MEDIA) if "preferred_medium" in t else None)
        medium = preferred
        if medium is None and (features.notify.mail or features.notify.voicemail):
            medium = features.notify.media[0] if features.notify.media else None
        address = ""
        if medium is not None:
            address = _medium_address(check, (*path, "preferred_medium"), media.get(medium),
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


def _medium_address(check: Checker, path: Path, declared: Medium | None, medium: str,
                    features: Any, profile: str, fields: Mapping[str, str | None],
                    channels: ChannelSettings) -> str | None:
    """The user's address for `medium`, found the way the medium declares; None: a problem."""
    if medium not in features.notify.media:
        check.error(path, f"'{medium}' is not among the media profile '{profile}' grants "
                    f"({', '.join(features.notify.media)})")
        return None
    if declared is None:
        # The profile's list was checked against the plugins: only a user's default can be here.
        check.error(path, f"is '{medium}' (the first medium of profile '{profile}'), which no "
                    "installed plugin offers: install it, or set preferred_medium")
        return None
    source = declared.address
    value: Any = None
    if isinstance(source, UserField | UserKey):
        key = source.name if isinstance(source, UserField) else source.setting.name
        value = fields.get(key)
        if not value:
            what = "number" if key == "mobile" else "address" if key == "email" else "key"
            check.error(path, f"is '{medium}' but the user has no '{key}' {what}")
            return None
    needed = source.name if isinstance(source, FromSetting) else None
    unset = [s.name for s in declared.settings
             if (s.required or s.name == needed) and s.name not in channels.of(medium)]
    if needed is not None and needed not in {s.name for s in declared.settings}:
        unset.append(needed)  # a declaration naming a setting it does not declare
    if unset:
        check.error(path, f"is '{medium}' but [channels] {medium}_{unset[0]} (or "
                    f"[channels.{medium}] {unset[0]}) is not set")
        return None
    return str(channels.of(medium)[needed]) if needed is not None else str(value)


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
        if backup is not None and not _ref_ok(backup, users, groups):
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


def _ref_ok(ref: Any, users: frozenset[str], groups: frozenset[str]) -> bool:
    if not isinstance(ref, str):
        return False
    return ref[1:] in groups if ref.startswith("@") else ref in users


def _check_references(check: Checker, users: dict[str, User], groups: dict[str, Group],
                      user_ids: frozenset[str], group_ids: frozenset[str]) -> None:
    for uid, user in users.items():
        for i, ref in enumerate(user.backups):
            path = ("users", uid, "backups", str(i))
            if ref == uid:
                check.error(path, "a user cannot be their own backup")
            elif not _ref_ok(ref, user_ids, group_ids):
                check.error(path, f"'{ref}' is not a defined user or @group (groups are "
                            "written with '@', e.g. \"@reception\")")
    for gid, group in groups.items():
        if group.overflow is not None:
            path = ("groups", gid, "overflow")
            if not _ref_ok(group.overflow, user_ids, group_ids):
                check.error(path, f"'{group.overflow}' is not a defined user or @group")
            elif group.overflow == f"@{gid}":
                check.error(path, "a group cannot overflow to itself")
    # Routing follows backups of an unreachable backup, and group overflows, transitively:
    # a loop there would ring the same people again and again. Loops are the strongly
    # connected parts of that graph, found in one pass: walking every backup path instead
    # takes exponential time (32 users each naming the next two: seconds; 40: minutes).
    edges: dict[str, tuple[str, ...]] = {u: tuple(users[u].backups) for u in users}
    edges.update({f"@{g}": (groups[g].overflow,) if groups[g].overflow else () for g in groups})
    for tangle in _strongly_connected(edges):
        start = tangle[0]
        cycle = _shortest_cycle(start, edges, frozenset(tangle))
        others = [n for n in tangle if n not in cycle]
        also = (f" (also in this loop: {', '.join(others[:10])}"
                f"{f' and {len(others) - 10} more' if len(others) > 10 else ''})" if others else "")
        where = (("users", start, "backups") if not start.startswith("@")
                 else ("groups", start[1:], "overflow"))
        check.error(where, f"backup chain loops: {_chain((*cycle, start))}{also}; "
                    "end the chain in a group or a user without backups")


def _strongly_connected(edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """The parts of the graph where each node reaches every other (Tarjan), of 2 nodes or more.

    Iterative, so that no chain is too long; each part and the parts themselves are in
    the order of `edges`, so the report names the loop where the policy file first has it.
    Edges to nodes that are not keys of `edges` (undefined names) are ignored.
    """
    order = {n: i for i, n in enumerate(edges)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    parts: list[list[str]] = []
    for root in edges:
        if root in index:
            continue
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        work = [(root, iter(edges[root]))]
        while work:
            node, todo = work[-1]
            for nxt in todo:
                if nxt not in edges:
                    continue
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    part = []
                    while True:
                        n = stack.pop()
                        on_stack.discard(n)
                        part.append(n)
                        if n == node:
                            break
                    if len(part) > 1:
                        parts.append(sorted(part, key=order.__getitem__))
    return sorted(parts, key=lambda part: order[part[0]])


def _shortest_cycle(start: str, edges: Mapping[str, Sequence[str]],
                    members: frozenset[str]) -> list[str]:
    """The shortest way from `start` back to it inside `members` (start first, not repeated)."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges[node]:
            if nxt == start and node != start:
                path = [node]
                while (back := came_from[path[-1]]) is not None:
                    path.append(back)
                return path[::-1]
            if nxt in members and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    return [start]


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
