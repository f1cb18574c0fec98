"""Where each value of a decision came from: profile, policy file, or the user's own choice.

``mailcall route --explain`` and ``mailcall mail --explain`` print it under the
plan: the same effective settings the decision used (:mod:`.effective`), each
with its source, and for a user's own choice when it was made, from where and by
whom (the store keeps the stamp of the change the audit log recorded).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from mailcall.core.contracts import Medium
from mailcall.core.policy.model import Policy
from mailcall.core.text import display_text
from mailcall.userstore.effective import Effective, effective_settings
from mailcall.userstore.refined_view import effective_of

USER_CHOICE = "user's choice"


def _effective(policy: Policy, view: Policy, uid: str,
               media: Mapping[str, Medium] | None) -> Effective:
    return effective_of(view, uid) or effective_settings(policy, uid, None, media=media)


def _shown(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(value) or "none"
    if value is True:
        return "on"
    if value is False:
        return "off"
    return "-" if value is None else str(value)


def sources(policy: Policy, view: Policy, full: Iterable[str], others: Iterable[str] = (), *,
            media: Mapping[str, Medium] | None = None, problems: Iterable[str] = ()
            ) -> tuple[list[str], dict[str, Any]]:
    """Lines for the terminal and the same as JSON.

    Every setting of the users in `full` (the callee, the recipient); for the users in
    `others` (backups rung), only what they chose themselves.
    """
    lines = ["", "Where the values came from:"]
    data: dict[str, Any] = {}
    problems = list(problems)
    for problem in problems:
        lines.append(f"  ! user store not applied: {display_text(problem, 400)}")
    if problems:
        data["store_problems"] = problems
    shown: list[tuple[str, bool]] = []
    for uid in full:
        if uid in policy.users and (uid, True) not in shown:
            shown.append((uid, True))
    for uid in others:
        if uid in policy.users and all(uid != u for u, _ in shown):
            shown.append((uid, False))
    for uid, everything in shown:
        eff = _effective(policy, view, uid, media)
        values = {k: v for k, v in eff.values.items()
                  if everything or v.source.startswith(USER_CHOICE)}
        absences = [a for a in eff.absences
                    if everything or a.source.startswith(USER_CHOICE)]
        if not everything and not values and not absences:
            continue
        data[uid] = {"profile": eff.user.profile,
                     "settings": {k: v.to_dict() for k, v in values.items()},
                     "absences": [a.to_dict() for a in absences]}
        lines.append(f"  {uid} (profile {eff.user.profile}):")
        width = max((len(k) for k in values), default=0)
        for name, item in values.items():
            lines.append(f"    {name:<{width}}  {display_text(_shown(item.value), 80)}  "
                         f"<- {item.source}")
            if item.note:
                lines.append(f"    {'':<{width}}  ! {display_text(item.note, 300)}")
        for item in absences:
            a = item.absence
            ident = f" #{item.id}" if item.id is not None else ""
            lines.append(f"    absence{ident} {policy.local(a.start):%Y-%m-%d %H:%M} to "
                         f"{policy.local(a.until):%Y-%m-%d %H:%M}, backup {a.backup or '-'}  "
                         f"<- {item.source}")
            if item.note:
                lines.append(f"      ! {display_text(item.note, 300)}")
    return lines, data
