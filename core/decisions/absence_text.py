"""The words of an absence auto-reply, in the user's language.

The phone side says the same thing with the absence greeting; both read the
dates and the backup from the one Absence record in the policy.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from mailcall.core.policy.model import Absence, Policy

_TEXT = {
    "en": {
        "subject": "Away until {until}: {name}",
        "body": "Hello,\n\n{name} is away until {until} and will read your message on return.\n"
                "{backup}{message}\n-- \n{org}\n",
        "backup": "For anything urgent, please contact {who}.\n",
        "date": "%A %d %B %Y",
    },
    "fr": {
        "subject": "Absent(e) jusqu'au {until} : {name}",
        "body": "Bonjour,\n\n{name} est absent(e) jusqu'au {until} et lira votre message à son "
                "retour.\n{backup}{message}\n-- \n{org}\n",
        "backup": "Pour toute urgence, contactez {who}.\n",
        "date": "%d/%m/%Y",
    },
}


def backup_contact(policy: Policy, ref: str | None, *, address: bool = True) -> str:
    """"Bernard Petit <bernard@…>, 202" for a user (without the address when it is to be
    spoken), the group's name and extension for a group."""
    if not ref:
        return ""
    if ref.startswith("@"):
        group = policy.groups[ref[1:]]
        ext = f", {group.extensions[0]}" if group.extensions else ""
        return f"{group.name}{ext}"
    user = policy.users[ref]
    ext = f", {user.extensions[0]}" if user.extensions else ""
    mail = f" <{user.email}>" if address else ""
    return f"{user.name}{mail}{ext}"


def last_day_away(policy: Policy, absence: Absence) -> date:
    """An absence ending at midnight ends, as people say it, the day before."""
    end = absence.until.astimezone(policy.organisation.timezone)
    if (end.hour, end.minute, end.second) == (0, 0, 0):
        return end.date() - timedelta(days=1)
    return end.date()


def current_or_next(policy: Policy, user_id: str, moment: datetime) -> Absence | None:
    """The absence covering `moment` (as ``Policy.absence_at`` picks it), else the next one.

    Not simply the first one not over: a user's own absences follow the policy file's in
    ``policy.absences`` (the policy's win where both cover a moment), so the list is
    sorted by start only within each of the two.
    """
    absences = policy.absences.get(user_id, ())
    for absence in absences:
        if absence.covers(moment):
            return absence
    ahead = [a for a in absences if a.until > moment]
    return min(ahead, key=lambda a: a.start) if ahead else None


def auto_reply_text(policy: Policy, user_id: str, absence: Absence) -> tuple[str, str]:
    user = policy.users[user_id]
    t = _TEXT.get(user.language, _TEXT["en"])
    until = last_day_away(policy, absence).strftime(t["date"])
    who = backup_contact(policy, absence.backup)
    subject = t["subject"].format(until=until, name=user.name)
    body = t["body"].format(
        name=user.name, until=until, org=policy.organisation.name,
        backup=t["backup"].format(who=who) if who else "",
        message=f"\n{absence.message}\n" if absence.message else "",
    )
    return subject, body
