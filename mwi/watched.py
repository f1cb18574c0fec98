"""Who has a lamp: the policy's users with voicemail, and the Asterisk mailbox that shows each.

Pure functions of the policy and ``mwi.toml``, read again at each reconcile
by the service (:mod:`mailcall.mwi.service`) and once by ``mailcall mwi``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import MwiSettings


@dataclass(frozen=True, slots=True)
class Watched:
    user: str
    login: str
    mailbox: str
    recipient: str
    """The address deposits are sealed for (DepositPlan.recipient: the user's email)."""


def watched_users(policy: Any, settings: MwiSettings) -> dict[str, Watched]:
    """user id -> who to count and which Asterisk mailbox shows it.

    Users whose mailbox ids collide (``[lamp] mailbox = "{extension}"`` and two users
    sharing an extension) are left out: one lamp cannot show two mailboxes' counts;
    :func:`mailbox_collisions` says who they are."""
    out = all_watched(policy, settings)
    clashing = {u for users in mailbox_collisions(out).values() for u in users}
    return {uid: w for uid, w in out.items() if uid not in clashing}


def mailbox_collisions(watched: dict[str, Watched]) -> dict[str, list[str]]:
    """Asterisk mailbox id -> the users it would show, for ids shared by several."""
    by_box: dict[str, list[str]] = {}
    for w in watched.values():
        by_box.setdefault(w.mailbox, []).append(w.user)
    return {box: sorted(users) for box, users in by_box.items() if len(users) > 1}


def all_watched(policy: Any, settings: MwiSettings) -> dict[str, Watched]:
    """Every voicemail user, colliding mailbox ids included (the service names them)."""
    lamp = settings.lamp
    out: dict[str, Watched] = {}
    for user in policy.users.values():
        if not user.features.voicemail.enabled:
            continue
        extension = user.extensions[0] if user.extensions else user.id
        mailbox = lamp.mailbox.replace("{id}", user.id).replace("{extension}", extension)
        login = user.email if lamp.login == "email" else user.id
        out[user.id] = Watched(user.id, login, mailbox, user.email)
    return out
