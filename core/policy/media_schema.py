"""What the installed media declare, checked in the policy: ``[channels.<medium>]``
(or, flat, ``[channels] <medium>_<key>``), the keys a medium adds to ``[users.ID]``,
and the address each user is notified at.

The core knows no medium by name: every rule here reads the :class:`Medium`
declarations of core/contracts.py, so a third-party medium is checked exactly as a
built-in one.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from mailcall.core.contracts import FromSetting, Medium, Setting, UserField, UserKey
from mailcall.core.policy.model import ChannelSettings, DeliverySettings
from mailcall.core.policy.section_keys import SHARED_CHANNEL_KEYS, url_value
from mailcall.core.policy.value_checks import Checker, Path


def read_channels(check: Checker, value: Any, defaults: dict[str, Any],
                  media: Mapping[str, Medium]) -> ChannelSettings:
    """[channels]: the shared keys, and each declared medium's settings.

    A medium's key is written ``[channels.sms] gateway`` or, flat, ``[channels]
    sms_gateway``: one rule for every medium, built in or not.
    """
    path: Path = ("channels",)
    if not isinstance(value, dict):
        value = check.table(value, path, ())  # reports "must be a table"
    flat = {f"{m}_{s.name}": (m, s.name) for m, medium in media.items() for s in medium.settings}
    common = {k: v for k, v in defaults.items() if k in SHARED_CHANNEL_KEYS}
    written: dict[str, dict[str, tuple[Any, Path]]] = {m: {} for m in media}

    def put(medium: str, name: str, v: Any, p: Path) -> None:
        if name in written[medium]:
            check.error(p, f"is set twice, as [channels.{medium}] {name} and [channels] "
                           f"{medium}_{name}: keep one")
        written[medium][name] = (v, p)

    for key, v in value.items():
        kpath = (*path, key)
        if key in SHARED_CHANNEL_KEYS:
            got = SHARED_CHANNEL_KEYS[key](check, v, kpath)
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
            check.table({key: v}, path, [*SHARED_CHANNEL_KEYS, *media, *flat])
    settings: dict[str, MappingProxyType] = {}
    for m, medium in media.items():
        got: dict[str, Any] = {}
        for setting in medium.settings:
            if setting.name in written[m]:
                v, p = written[m][setting.name]
                converted = declared_value(check, setting, v, p)
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


def declared_value(check: Checker, setting: Setting, v: Any, p: Path) -> Any:
    """A value of a key a plugin declared: its kind checked by the core, then the plugin's rule."""
    kind = setting.kind
    if kind == "url":
        got = url_value(check, v, p)
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


def check_relay(check: Checker, channels: ChannelSettings, delivery: DeliverySettings) -> None:
    """The relay takes mail for the outside; Dovecot's LMTP refuses any non-local address."""
    if delivery.method == "lmtp" and channels.relay == delivery.address:
        check.error(("channels", "relay"),
                    f"'{channels.relay}' is [delivery] address, Dovecot's LMTP: it answers 550 "
                    "to SMS-gateway and outside addresses. Set relay to your MTA's SMTP "
                    "port (e.g. 127.0.0.1:25)")


def medium_user_keys(check: Checker, media: Mapping[str, Medium],
                     reserved: tuple[str, ...]) -> dict[str, str]:
    """Keys of [users.ID] the media add (key -> medium); one clashing with another, or with
    one of mailcall's own keys (`reserved`), is refused."""
    out: dict[str, str] = {}
    for m, medium in media.items():
        if not isinstance(medium.address, UserKey):
            continue
        key = medium.address.setting.name
        if key in reserved or key in out:
            check.error(("users",), f"the plugin of medium '{m}' declares the user key '{key}', "
                        f"already {'a key of mailcall' if key in reserved else 'declared by '}"
                        f"{'' if key in reserved else repr(out[key])}: the plugin must "
                        "rename it (ask its author), or disable one of the plugins")
            continue
        out[key] = m
    return out


def medium_address(check: Checker, path: Path, declared: Medium | None, medium: str,
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
