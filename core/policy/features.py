"""Feature sets: what a profile grants and how far a user may refine it.

Features are handled as flat ``{("notify", "mail"): True}`` maps while
compiling, because inheritance (``extends``) and user overrides are then plain
dictionary updates, and "within the profile" is one comparison per leaf.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from typing import Any

from mailcall.core.policy.model import (
    GREETING_KINDS,
    HOURS,
    REROUTE_CONDITIONS,
    FaxFeature,
    Features,
    NotifyFeature,
    RerouteFeature,
    VoicemailFeature,
)
from mailcall.core.policy.value_checks import Checker, Path, Vocabulary

Flat = dict[tuple[str, ...], Any]

# leaf kind: ("bool",), ("choices", options), ("choice", options), ("int", low, high), ("senders",)
SCHEMA: dict[str, Any] = {
    "voicemail": {
        "enabled": ("bool",),
        "formats": ("choices", Vocabulary.AUDIO_FORMATS),
        "max_seconds": ("int", 10, 3600),
    },
    "fax": {"enabled": ("bool",), "formats": ("choices", Vocabulary.FAX_FORMATS)},
    "notify": {
        "mail": ("bool",),
        "voicemail": ("bool",),
        "media": ("choices", Vocabulary.MEDIA),
        "hours": ("choice", HOURS),
        "senders": ("senders",),
    },
    "reroute": {
        "enabled": ("bool",),
        "on": ("choices", REROUTE_CONDITIONS),
        "mobile": ("bool",),
    },
    "greetings": ("choices", GREETING_KINDS),
    "mailbox_by_phone": ("bool",),
    "auto_reply": ("bool",),
    "transcription": ("bool",),
    "ring_time": ("int", 5, 300),
}
FEATURE_NAMES: tuple[str, ...] = tuple(SCHEMA)


def load_defaults() -> dict[str, Any]:
    """The commented defaults file shipped with mailcall, parsed."""
    text = resources.files("mailcall.core").joinpath("data/defaults.toml").read_text("utf-8")
    return tomllib.loads(text)


def parse(check: Checker, value: Any, path: Path) -> Flat:
    """A (partial) feature table from a profile or a user's overrides."""
    flat: Flat = {}
    table = check.table(value, path, SCHEMA)
    for name, sub in table.items():
        spec = SCHEMA[name]
        if isinstance(spec, dict):
            inner = check.table(sub, (*path, name), spec)
            for leaf, v in inner.items():
                got = _leaf(check, v, (*path, name, leaf), spec[leaf])
                if got is not None:
                    flat[(name, leaf)] = got
        else:
            got = _leaf(check, sub, (*path, name), spec)
            if got is not None:
                flat[(name,)] = got
    return flat


def _leaf(check: Checker, value: Any, path: Path, spec: tuple) -> Any:
    kind = spec[0]
    if kind == "bool":
        return check.boolean(value, path)
    if kind == "choices":
        return check.choices(value, path, spec[1], nonempty=path[-1] in ("formats", "media"))
    if kind == "choice":
        return check.choice(value, path, spec[1])
    if kind == "int":
        return check.integer(value, path, spec[1], spec[2])
    return check.strings(value, path, _sender(check))


def _sender(check: Checker):
    def one(v: Any, p: Path) -> str | None:
        if isinstance(v, str) and v.startswith("@"):
            d = check.domain(v[1:], p)
            return f"@{d}" if d else None
        e = check.email(v, p)
        return e.lower() if e else None

    return one


def narrower(profile_value: Any, user_value: Any, spec: tuple) -> bool:
    """True when the user's value asks for no more than the profile grants."""
    kind = spec[0]
    if kind == "bool":
        return profile_value or not user_value
    if kind == "choices":
        return set(user_value) <= set(profile_value)
    if kind == "choice":
        return profile_value == "always" or user_value == profile_value
    if kind == "int":
        return user_value <= profile_value
    return not profile_value or set(user_value) <= set(profile_value)


def spec_of(key: tuple[str, ...]) -> tuple:
    spec = SCHEMA[key[0]]
    return spec[key[1]] if isinstance(spec, dict) else spec


def build(flat: Flat) -> Features:
    def sub(name: str) -> dict[str, Any]:
        return {k[1]: v for k, v in flat.items() if k[0] == name and len(k) == 2}

    return Features(
        voicemail=VoicemailFeature(**sub("voicemail")),
        fax=FaxFeature(**sub("fax")),
        notify=NotifyFeature(**sub("notify")),
        reroute=RerouteFeature(**sub("reroute")),
        greetings=flat[("greetings",)],
        mailbox_by_phone=flat[("mailbox_by_phone",)],
        auto_reply=flat[("auto_reply",)],
        transcription=flat[("transcription",)],
        ring_time=flat[("ring_time",)],
    )


def render(key: tuple[str, ...]) -> str:
    return ".".join(key)
