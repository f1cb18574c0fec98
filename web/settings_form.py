"""The settings form: a control for each setting the profile grants, and the form read back.

What a control offers is asked of the one ceiling check
(:func:`mailcall.userstore.fields.check_value`): an option is shown when the check
accepts it, a setting is read-only when the check refuses every change (with the
check's reason, in the page's language). Nothing here decides what is saved: the
values read back from a form go to :meth:`UserStore.set`, which checks them again,
all at once, inside its write.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mailcall.core.policy.model import HOURS, Policy, User
from mailcall.userstore.effective import Effective
from mailcall.userstore.errors import FieldProblem
from mailcall.userstore.fields import FIELDS, check_value, leaf
from mailcall.userstore.records import Refinements
from mailcall.web import wording
from mailcall.web.i18n import TEXT, Words
from mailcall.web.plan import display_name
from mailcall.web.refusals import translate

NOTIFY_GROUP = ("preferred_medium", "notify.media", "notify.hours")
"""Settings that mean something only when the profile notifies of mail or voicemail."""


@dataclass(frozen=True, slots=True)
class Option:
    value: str
    label: str
    selected: bool


@dataclass(frozen=True, slots=True)
class Slot:
    """One backup the policy gives, and its place in the user's order (None: not used)."""

    ref: str
    label: str
    position: int | None


@dataclass(frozen=True, slots=True)
class Control:
    name: str
    kind: str
    """"checkbox", "select", "checkboxes", "order" (backups) or "readonly"."""
    label: str
    shown: str
    """The value in effect now, in words."""
    source: str
    note: str | None
    user_choice: bool
    """The user has a choice of their own stored (in effect, or set aside): they may put
    IT's value back."""
    reason: str | None = None
    """Why it cannot be changed (kind "readonly")."""
    checked: bool = False
    options: tuple[Option, ...] = ()
    slots: tuple[Slot, ...] = field(default=())

    @property
    def dom(self) -> str:
        return self.name.replace(".", "-")


@dataclass(frozen=True, slots=True)
class Pin:
    shown: str
    source: str
    reason: str | None
    """Why no PIN can be set (None: the form is offered)."""


def _word(t: Words, key: str, fallback: str) -> str:
    return t(key) if key in TEXT else fallback


def _why(policy: Policy, user: User, name: str, value: Any, t: Words,
         pending: Mapping[str, Any] | None = None) -> str | None:
    problem = check_value(policy, user, name, value, pending)
    return None if problem is None else translate(FieldProblem(name, problem), t.lang,
                                                     policy)


def controls(policy: Policy, eff: Effective, refinements: Refinements | None, user_id: str,
             t: Words, fmt: Callable[[datetime], str],
             wanted: Mapping[str, Any] | None = None) -> tuple[list[Control], Pin]:
    """One control per setting (the PIN apart), showing `wanted` (a refused form's
    values) where given, else the value in effect."""
    user = policy.users[user_id]  # the policy's own user: the ceiling, not the refined one
    rows = {r.name: r for r in wording.settings(policy, eff, refinements, user_id, t, fmt)}
    stored = refinements.values if refinements is not None else {}
    wanted = wanted or {}
    profile = policy.profiles[user.profile]
    notifies = user.features.notify.mail or user.features.notify.voicemail
    out: list[Control] = []
    for name, spec in FIELDS.items():
        if name == "pin":
            continue
        row = rows[name]
        now = eff.values[name].value
        value = wanted.get(name, now)
        base = {"name": name, "label": row.label, "shown": row.value, "source": row.source,
                "note": row.note, "user_choice": name in stored}
        reason: str | None = None
        if spec.lock and spec.lock in profile.locked:
            reason = _why(policy, user, name, now, t)
        elif name in NOTIFY_GROUP and not notifies:
            reason = t("settings.no_notify")
        if reason is not None:
            out.append(Control(kind="readonly", reason=reason, **base))
            continue
        if spec.kind == "bool":
            reason = _why(policy, user, name, True, t)
            out.append(Control(kind="readonly", reason=reason, **base) if reason else
                       Control(kind="checkbox", checked=bool(value), **base))
        elif spec.kind == "choice":
            allowed = [h for h in HOURS if check_value(policy, user, name, h) is None]
            if len(allowed) <= 1:
                other = next(h for h in HOURS if h not in allowed)
                out.append(Control(kind="readonly", reason=_why(policy, user, name, other, t),
                                   **base))
            else:
                out.append(Control(kind="select", options=tuple(
                    Option(h, t(f"hours.{h}"), h == value) for h in allowed), **base))
        elif spec.kind == "choices":
            assert spec.feature is not None
            granted = list(leaf(user.features, spec.feature))
            prefix = "greeting" if name == "greetings" else "medium"
            if not granted:
                out.append(Control(kind="readonly", reason=t("settings.none_granted"), **base))
            else:
                out.append(Control(kind="checkboxes", options=tuple(
                    Option(g, _word(t, f"{prefix}.{g}", g), g in (value or ()))
                    for g in granted), **base))
        elif spec.kind == "medium":
            granted = list(user.features.notify.media)
            pending = {"notify.media": granted}
            allowed = [m for m in granted
                       if check_value(policy, user, name, m, pending) is None]
            if not allowed:
                first = granted[0] if granted else "sms"
                out.append(Control(kind="readonly", reason=_why(policy, user, name, first, t,
                                                                pending), **base))
            else:
                out.append(Control(kind="select", options=tuple(
                    Option(m, _word(t, f"medium.{m}", m), m == value) for m in allowed),
                    **base))
        elif spec.kind == "backups":
            allowed = list(user.backups)
            if not user.features.reroute.enabled:
                out.append(Control(kind="readonly", reason=t("settings.no_reroute"), **base))
            elif not allowed:
                out.append(Control(kind="readonly", reason=t("settings.no_backups"), **base))
            else:
                order = [r for r in (value or ()) if r in allowed]
                listed = order + [r for r in allowed if r not in order]
                out.append(Control(kind="order", slots=tuple(
                    Slot(r, display_name(policy, r),
                         order.index(r) + 1 if r in order else None) for r in listed),
                    **base))
    pin_row = rows["pin"]
    pin_reason = None if user.features.mailbox_by_phone else translate(
        FieldProblem("pin", check_value(policy, user, "pin", "") or ""), t.lang)
    return out, Pin(pin_row.value, pin_row.source, pin_reason)


class FormProblem(ValueError):
    """A form the page itself cannot read (not a refusal of the store): field, key."""

    def __init__(self, field: str, key: str) -> None:
        super().__init__(key)
        self.field = field
        self.key = key


def read_form(shown: list[Control], form: Any) -> dict[str, Any]:
    """The values a submitted settings form asks for, for the settings it showed.

    Only the controls that are editable now and that the form says it carried
    (hidden ``fields``) are read, so that an unticked box means "off" and not "the
    form was made before IT changed the profile". Values the page did not offer
    (a forged form) are passed on as they are: the store refuses them.
    """
    carried = set(form.getall("fields", []))
    out: dict[str, Any] = {}
    for c in shown:
        if c.kind == "readonly" or c.name not in carried:
            continue
        if c.kind == "checkbox":
            out[c.name] = form.get(c.name) == "on"
        elif c.kind == "select":
            out[c.name] = str(form.get(c.name, ""))
        elif c.kind == "checkboxes":
            ticked = [str(v) for v in form.getall(c.name, [])]
            offered = [o.value for o in c.options]
            out[c.name] = ([v for v in offered if v in ticked]
                           + [v for v in dict.fromkeys(ticked) if v not in offered])
        elif c.kind == "order":
            out[c.name] = _order(c, form)
    return out


def _order(c: Control, form: Any) -> list[str]:
    known = [s.ref for s in c.slots]
    refs = known + [k[4:] for k in form if k.startswith("pos:") and k[4:] not in known]
    placed: list[tuple[int, int, str]] = []
    for n, ref in enumerate(refs):
        text = str(form.get(f"pos:{ref}", "")).strip()
        if not text:
            continue
        if not text.isdigit() or not 1 <= int(text) <= max(len(refs), 1):
            raise FormProblem(c.name, "settings.position_bad")
        placed.append((int(text), n, ref))
    return [ref for _, _, ref in sorted(placed)]


def changes(eff: Effective, wanted: Mapping[str, Any]) -> dict[str, Any]:
    """The part of `wanted` that differs from what is in effect: an untouched setting
    stays IT's (it does not become the user's choice by being in the form)."""
    out = {}
    for name, value in wanted.items():
        now = eff.values[name].value
        if isinstance(now, tuple):
            now = list(now)
        if value != now:
            out[name] = value
    return out
