"""The words of the generated voicemail greetings, in the user's language.

Used when a user has not recorded a personal greeting. The absence greeting
reads the same Absence record as the mail auto-reply, so callers and mail
senders hear and read the same return date.
"""

from __future__ import annotations

from datetime import datetime

from mailcall.core.decisions.absence_text import backup_contact, current_or_next, last_day_away
from mailcall.core.policy.model import Policy

_TEXT = {
    "en": {
        "unavailable": "You have reached the voicemail of {name}, who cannot take your call. "
                       "Please leave a message after the tone.",
        "busy": "{name} is on another call. Please leave a message after the tone.",
        "absence": "{name} is away until {until}, back on {back}. {backup}"
                   "Please leave a message after the tone.",
        "backup": "For anything urgent, please call {who}. ",
        "date": "%d %B",
    },
    "fr": {
        "unavailable": "Bonjour, {name} ne peut pas vous répondre pour le moment. "
                       "Laissez un message après le bip.",
        "busy": "{name} est déjà en ligne. Laissez un message après le bip.",
        "absence": "{name} sera de retour le {back}. {backup}"
                   "Laissez un message après le bip.",
        "backup": "En cas d'urgence, appelez {who}. ",
        "date": "%d/%m",
    },
}


def greeting_text(policy: Policy, user_id: str, kind: str, now: datetime) -> str | None:
    """The text of `kind` for `user_id`, or None when it does not apply (no absence ahead)."""
    user = policy.users[user_id]
    t = _TEXT.get(user.language, _TEXT["en"])
    if kind != "absence":
        return t[kind].format(name=user.name)
    absence = current_or_next(policy, user_id, now)
    if absence is None:
        return None
    who = backup_contact(policy, absence.backup, address=False)
    back = absence.until.astimezone(policy.organisation.timezone)
    return t["absence"].format(name=user.name, back=back.strftime(t["date"]),
                               until=last_day_away(policy, absence).strftime(t["date"]),
                               backup=t["backup"].format(who=who) if who else "")

