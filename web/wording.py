"""A user's profile and settings in plain words, for the page (both languages).

Values come from :func:`mailcall.userstore.effective_settings`; this module only
words them. Outside text (names, messages) stays plain text here: the templates
escape it (autoescape on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailcall.core.policy.model import Policy
from mailcall.userstore.effective import Effective
from mailcall.userstore.records import Refinements
from mailcall.web.i18n import TEXT, Words
from mailcall.web.plan import display_name


@dataclass(frozen=True, slots=True)
class Row:
    name: str
    label: str
    value: str
    source: str
    note: str | None = None


def features(policy: Policy, eff: Effective, t: Words) -> list[str]:
    f = eff.user.features
    lines: list[str] = []
    if f.voicemail.enabled:
        lines.append(t("feature.voicemail", formats=", ".join(f.voicemail.formats)))
    else:
        lines.append(t("feature.no_voicemail"))
    if f.fax.enabled:
        lines.append(t("feature.fax", formats=", ".join(f.fax.formats)))
    what = [t(f"what.{k}") for k, on in (("mail", f.notify.mail),
                                          ("voicemail", f.notify.voicemail)) if on]
    if what and f.notify.media:
        lines.append(t("feature.notify", what=t("and").join(what),
                       media=t("or").join(f.notify.media), hours=t(f"hours.{f.notify.hours}")))
    else:
        lines.append(t("feature.no_notify"))
    if f.reroute.enabled:
        lines.append(t("feature.reroute", when=", ".join(t(f"cond.{c}")
                                                          for c in f.reroute.on)))
        if f.reroute.mobile and eff.user.mobile:
            lines.append(t("feature.mobile"))
    else:
        lines.append(t("feature.no_reroute"))
    if f.greetings:
        lines.append(t("feature.greetings", kinds=", ".join(t(f"greeting.{g}")
                                                            for g in f.greetings)))
    if f.mailbox_by_phone:
        lines.append(t("feature.phone"))
    if f.auto_reply:
        lines.append(t("feature.auto_reply"))
    locked = policy.profiles[eff.user.profile].locked
    if locked:
        lines.append(t("feature.locked", what=", ".join(sorted(locked))))
    return lines


def _value(policy: Policy, name: str, value: Any, t: Words) -> str:
    if isinstance(value, bool):
        return t("on") if value else t("off")
    if value is None or value == []:
        return t("none")
    if name == "notify.hours":
        return t(f"hours.{value}")
    if name == "pin":
        return t(f"pin.{value}")
    if name == "backups":
        return ", ".join(display_name(policy, v) for v in value)
    if name == "greetings":
        return ", ".join(t(f"greeting.{v}") for v in value)
    if name in ("preferred_medium", "notify.media"):
        listed = value if isinstance(value, list | tuple) else [value]
        return ", ".join(t(f"medium.{m}") if f"medium.{m}" in TEXT else str(m) for m in listed)
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


def settings(policy: Policy, eff: Effective, refinements: Refinements | None, user_id: str,
             t: Words, fmt: Callable[[datetime], str]) -> list[Row]:
    stored = refinements.values if refinements is not None else {}
    rows = []
    for name, sourced in eff.values.items():
        source = sourced.source
        choice = stored.get(name)
        if source.startswith("user's choice") and choice is not None:
            st = choice.stamp
            words = (t("source.user", when=fmt(st.at), origin=st.origin) if st.actor == user_id
                     else t("source.other", actor=st.actor, when=fmt(st.at), origin=st.origin))
        elif source.startswith("profile"):
            words = t("source.profile", profile=eff.user.profile)
        else:
            words = t("source.policy")
        rows.append(Row(name, t(f"field.{name}"), _value(policy, name, sourced.value, t), words,
                        t("source.aside") if sourced.note else None))
    return rows
