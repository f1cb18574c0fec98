"""The settings a user may refine, how their values are read, and the policy's ceiling.

One table (:data:`FIELDS`) says, for each setting, which feature of the
profile bounds it and which ``locked`` name freezes it; :func:`check_value`
is the one place that compares a wished value with what the policy grants, so
the CLI, the web page and the phone menu refuse the same things in the same
words, and the effective-settings function re-checks stored choices against
a policy that IT may have narrowed since.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mailcall.core.policy.model import GREETING_KINDS, HOURS, Features, Policy, User
from mailcall.core.policy.pins import is_pin_hash


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: str
    """"bool", "choices", "choice", "medium", "backups" or "pin"."""
    feature: tuple[str, ...] | None
    """The feature leaf that bounds it (None: bounded otherwise)."""
    lock: str | None
    """The profile's ``locked`` name that freezes it."""
    help: str


FIELDS: dict[str, Field] = {f.name: f for f in (
    Field("preferred_medium", "medium", None, "notify",
          "the medium notifications use, among notify.media"),
    Field("notify.mail", "bool", ("notify", "mail"), "notify",
          "notify the mobile of new mail (on/off)"),
    Field("notify.voicemail", "bool", ("notify", "voicemail"), "notify",
          "notify the mobile of new voicemail and fax (on/off)"),
    Field("notify.media", "choices", ("notify", "media"), "notify",
          "media notifications may use, e.g. sms,email"),
    Field("notify.hours", "choice", ("notify", "hours"), "notify",
          "when to notify: always, office, outside-office"),
    Field("reroute.mobile", "bool", ("reroute", "mobile"), "reroute",
          "ring the mobile after the desk phone (on/off)"),
    Field("backups", "backups", None, "reroute",
          "who takes unanswered calls, in order, among the backups the policy gives"),
    Field("greetings", "choices", ("greetings",), "greetings",
          "personal greetings used, among those the profile grants"),
    Field("pin", "pin", None, None, "the phone PIN (stored as a hash only)"),
)}

_TRUE = {"on", "true", "yes", "1"}
_FALSE = {"off", "false", "no", "0"}


def field_names() -> str:
    return ", ".join(FIELDS)


def parse_text(name: str, text: str) -> Any:
    """A value typed on the command line (``on``, ``sms,email``, ``office``) as stored.

    Raises ValueError with a message for the admin; the ceiling is checked later.
    """
    spec = FIELDS[name]
    text = text.strip()
    if spec.kind == "bool":
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise ValueError(f"must be on or off (true/false), not {text!r}")
    if spec.kind in ("choices", "backups"):
        if text.lower() in ("", "none"):
            return []
        return [part.strip() for part in text.split(",")]
    if spec.kind == "pin":
        raise ValueError("is read from standard input or a prompt, never from the command "
                         "line (it would stay in the shell history): use --pin")
    return text


def leaf(features: Features, key: tuple[str, ...]) -> Any:
    value: Any = features
    for part in key:
        value = getattr(value, part)
    return value


def with_leaf(features: Features, key: tuple[str, ...], value: Any) -> Features:
    if len(key) == 1:
        return dataclasses.replace(features, **{key[0]: value})
    inner = getattr(features, key[0])
    return dataclasses.replace(features, **{key[0]: dataclasses.replace(inner,
                                                                        **{key[1]: value})})


def _bound(policy: Policy, user: User, key: tuple[str, ...]) -> tuple[Any, str]:
    """What the policy grants this user for `key`, and who grants it (for messages)."""
    granted = leaf(user.features, key)
    profile = policy.profiles[user.profile]
    dotted = ".".join(key)
    if granted == leaf(profile.features, key):
        return granted, f"profile '{user.profile}'"
    return granted, (f"the policy file for user '{user.id}' "
                     f"(users.{user.id}.overrides.{dotted})")


def _listed(values: Any) -> str:
    return ", ".join(values) if values else "nothing"


def check_value(policy: Policy, user: User, name: str, value: Any,
                pending: Mapping[str, Any] | None = None) -> str | None:
    """Why `value` may not be set for `name`, or None when the policy allows it.

    `pending` holds the other values of the same change (or the user's stored ones), so
    that ``preferred_medium`` is checked against the notify.media being set with it.
    """
    spec = FIELDS.get(name)
    if spec is None:
        return f"is not a setting users may change; they are: {field_names()}"
    profile = policy.profiles[user.profile]
    if spec.lock and spec.lock in profile.locked:
        return (f"profile '{user.profile}' locks '{spec.lock}': users may not change it; "
                "ask IT to change the profile or the policy file")
    if spec.kind == "pin":
        if not user.features.mailbox_by_phone:
            return (f"profile '{user.profile}' does not grant mailbox_by_phone: a phone PIN "
                    "would open nothing")
        if not isinstance(value, str) or not is_pin_hash(value):
            return "must be a PIN hash made by mailcall (hash_pin), never the PIN itself"
        return None
    if spec.kind == "backups":
        return _check_backups(policy, user, value)
    if spec.kind == "medium":
        return _check_medium(policy, user, value, pending or {})
    assert spec.feature is not None
    granted, who = _bound(policy, user, spec.feature)
    key = ".".join(spec.feature)
    if spec.kind == "bool":
        if not isinstance(value, bool):
            return f"must be on or off (true/false), not {value!r}"
        if value and not granted:
            return (f"{who} does not grant {key} (it is off there); users may only switch "
                    "a feature off")
        if value and key == "reroute.mobile" and not user.mobile:
            return (f"user '{user.id}' has no mobile number in the policy file "
                    f"(users.{user.id}.mobile): ask IT to add it")
        return None
    if spec.kind == "choice":
        if value not in HOURS:
            return f"must be one of {', '.join(HOURS)}, not {value!r}"
        if granted != "always" and value != granted:
            return (f"{who} grants {key} = '{granted}' only; users may choose '{granted}' "
                    "(only a profile granting 'always' leaves office or outside-office to them)")
        return None
    # choices
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        return f"must be a list of names, e.g. {','.join(granted) or 'sms'}"
    if len(set(value)) != len(value):
        return "lists the same value twice"
    if key == "greetings":
        unknown = [v for v in value if v not in GREETING_KINDS]
        if unknown:
            return (f"{_listed(unknown)}: not a kind of greeting (they are "
                    f"{', '.join(GREETING_KINDS)})")
    if key == "notify.media" and not value:
        return ("must name at least one medium; to get no notifications, set notify.mail "
                "and notify.voicemail off")
    extra = [v for v in value if v not in granted]
    if extra:
        return (f"{_listed(extra)} not granted by {who} ({key} = {_listed(granted)}); "
                "users may only choose among those")
    return None


def _check_medium(policy: Policy, user: User, value: Any, pending: Mapping[str, Any]) -> str | None:
    if not isinstance(value, str) or not value:
        return "must be the name of a medium, e.g. sms"
    media = pending.get("notify.media", user.features.notify.media)
    if value not in media:
        granted, who = _bound(policy, user, ("notify", "media"))
        narrowed = "" if tuple(media) == tuple(granted) else f" (narrowed to {_listed(media)})"
        return (f"'{value}' is not among the media {who} grants "
                f"(notify.media = {_listed(granted)}){narrowed}")
    if value == "sms" and not user.mobile:
        return (f"is 'sms' but user '{user.id}' has no mobile number in the policy file "
                f"(users.{user.id}.mobile): ask IT to add it")
    return None


def _check_backups(policy: Policy, user: User, value: Any) -> str | None:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        return "must be a list of user ids or @groups, e.g. bernard,@reception"
    if len(set(value)) != len(value):
        return "lists the same backup twice"
    allowed = user.backups
    for ref in value:
        exists = (ref[1:] in policy.groups) if ref.startswith("@") else ref in policy.users
        if not exists:
            return (f"'{ref}' is not a defined user or @group (groups are written with '@', "
                    "e.g. \"@reception\")")
        if ref not in allowed:
            return (f"'{ref}' is not among the backups the policy file gives user "
                    f"'{user.id}' ({_listed(allowed)}); users may only reorder or drop "
                    f"those: ask IT to add '{ref}' to users.{user.id}.backups")
    return None


def check_absence_backup(policy: Policy, user: User, backup: str) -> str | None:
    """Why `backup` may not cover an absence of `user`, or None."""
    profile = policy.profiles[user.profile]
    if "reroute" in profile.locked:
        return (f"profile '{user.profile}' locks 'reroute': the absence can be set, but who "
                "takes the calls is IT's choice (leave --backup out)")
    reroute = user.features.reroute
    if not reroute.enabled or "absent" not in reroute.on:
        _, who = _bound(policy, user, ("reroute", "on") if reroute.enabled
                              else ("reroute", "enabled"))
        return (f"{who} does not reroute the calls of an absent user (reroute.enabled and "
                "'absent' in reroute.on): a backup would never be rung; leave --backup out")
    if backup == user.id:
        return "an absent user cannot be their own backup"
    exists = (backup[1:] in policy.groups) if backup.startswith("@") else backup in policy.users
    if not exists:
        return (f"'{backup}' is not a defined user or @group (groups are written with '@', "
                "e.g. \"@reception\")")
    return None
