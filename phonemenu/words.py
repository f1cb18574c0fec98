"""What the menu says that depends on the message or the caller: envelopes, mail counts,
an absence said back, in fr and en.

Short sentences: the speech engine makes one audio chunk per sentence, so the
first is playing while the next is made, and a key cuts in between.
Who left a voicemail is a colleague's name when the calling number belongs to
someone in the policy (the name written there, never the one the caller sent),
otherwise the number, grouped the way the organisation's country writes it,
otherwise "unknown caller". Everything from outside goes through
``display_text`` (mailcall.core.text), once more, before it is spoken.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

import phonenumbers

from mailcall.core.decisions.absence_text import last_day_away
from mailcall.core.policy.model import Absence, Policy
from mailcall.core.policy.numbers import find_owner
from mailcall.core.text import display_text

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

WEEKDAYS = {
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
}
MONTHS = {
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
    "fr": ("janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août",
           "septembre", "octobre", "novembre", "décembre"),
}
NAME_LIMIT = 80
SUBJECT_LIMIT = 200


def lang(language: str | None) -> str:
    """The wording used: French for any ``fr*``, English otherwise."""
    return "fr" if (language or "").lower().startswith("fr") else "en"


def colleague(policy: Policy, number: str | None) -> str | None:
    """The policy name of the user whose extension, number or mobile `number` is."""
    owner = find_owner(policy, number, mobiles=True) if number else None
    user = policy.users.get(owner) if owner else None
    return user.name if user is not None else None


def spoken_number(number: str, country: str) -> str:
    """A phone number as it is written nationally ("06 11 22 33 44"), digits otherwise."""
    try:
        parsed = phonenumbers.parse(number, country or None)
        if phonenumbers.is_possible_number(parsed):
            return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
    except phonenumbers.NumberParseException:
        pass
    return " ".join(ch for ch in number if ch.isdigit())


def when(moment: datetime, now: datetime, language: str) -> str:
    """"today at 10:05", "yesterday at 18:30", "on Monday 30 November at 9:00"."""
    local = moment.astimezone(now.tzinfo)
    clock = f"{local.hour}:{local.minute:02d}" if language == "en" else \
        f"{local.hour} heures {local.minute:02d}"
    day = local.date()
    if day == now.date():
        return f"today at {clock}" if language == "en" else f"aujourd'hui à {clock}"
    if day == now.date() - timedelta(days=1):
        return f"yesterday at {clock}" if language == "en" else f"hier à {clock}"
    weekday = WEEKDAYS[language][local.weekday()]
    month = MONTHS[language][local.month - 1]
    if language == "en":
        return f"on {weekday} {local.day} {month} at {clock}"
    return f"le {weekday} {local.day} {month} à {clock}"


def duration(seconds: float, language: str) -> str:
    total = max(0, round(seconds))
    minutes, secs = divmod(total, 60)
    parts = []
    if minutes:
        parts.append(f"{minutes} minute" + ("s" if minutes > 1 else ""))
    if secs or not minutes:
        word = "second" if language == "en" else "seconde"
        parts.append(f"{secs} {word}" + ("s" if secs > 1 else ""))
    return (" and " if language == "en" else " et ").join(parts)


def _of(total: int | None, language: str) -> str:
    """" of 12" / " sur 12"; nothing when the folder was listed only in part (the store
    lists at most max_listed): a capped list's length is never said as the total."""
    if total is None:
        return ""
    return f" sur {total}" if language == "fr" else f" of {total}"


def voice_envelope(policy: Policy, message: MessageSummary, position: int, total: int | None,
                   now: datetime, language: str) -> list[str]:
    """The sentences said before a voicemail's audio: which, who, when, how long."""
    fr = language == "fr"
    kind = message.kind
    noun = "Fax" if kind == "fax" else "Message"
    new = not message.seen
    if fr:
        first = f"{noun} {position + 1}{_of(total, 'fr')}" + (", nouveau." if new else ".")
    else:
        first = ("New " + noun.lower() if new else noun) + f" {position + 1}{_of(total, 'en')}."
    number = message.caller_number
    name = colleague(policy, number)
    if name is None and number:
        who = spoken_number(number, policy.organisation.country)
    else:
        who = name
    if who:
        second = f"De {display_text(who, NAME_LIMIT)}." if fr else \
            f"From {display_text(who, NAME_LIMIT)}."
    else:
        second = "Appelant inconnu." if fr else "Unknown caller."
    third = ("Reçu " if fr else "Received ") + when(message.date, now, language) + "."
    out = [first, second, third]
    seconds = message.duration
    if seconds:
        out.append(("Durée : " if fr else "Length: ") + duration(seconds, language) + ".")
    return out


def mail_envelope(message: MessageSummary, position: int, total: int | None, now: datetime,
                  language: str) -> list[str]:
    """The sentences said before a mail's text: which, from whom, about what, when."""
    fr = language == "fr"
    name = display_text(message.sender_name, NAME_LIMIT)
    address = display_text(message.sender_address, NAME_LIMIT)
    sender = name or address or ("expéditeur inconnu" if fr else "unknown sender")
    subject = display_text(message.subject, SUBJECT_LIMIT)
    kind = message.kind
    noun = {"voice": ("voice message", "message vocal"), "fax": ("fax", "fax")}.get(
        kind, ("e-mail", "e-mail"))[1 if fr else 0]
    if fr:
        out = [f"{noun.capitalize()} {position + 1}{_of(total, 'fr')}.", f"De {sender}."]
        out.append(f"Objet : {subject}." if subject else "Sans objet.")
        out.append("Reçu " + when(message.date, now, language) + ".")
    else:
        out = [f"{noun.capitalize()} {position + 1}{_of(total, 'en')}.", f"From {sender}."]
        out.append(f"Subject: {subject}." if subject else "No subject.")
        out.append("Received " + when(message.date, now, language) + ".")
    return out


def mail_count(count: int, language: str) -> str:
    if language == "fr":
        if count == 0:
            return "Vous n'avez aucun e-mail non lu."
        plural = "s" if count > 1 else ""
        return f"Vous avez {count} e-mail{plural} non lu{plural}."
    if count == 0:
        return "You have no unread e-mail."
    return f"You have {count} unread e-mail{'s' if count > 1 else ''}."


def voice_count_at_least(new: int, old: int, *, new_exact: bool, language: str) -> str:
    """The voicemail count from a listing that stopped at max_listed: what was listed is
    proven, what was not is unknown, so the open end is said as "at least"."""
    fr = language == "fr"
    if not new_exact:
        if fr:
            return f"Vous avez au moins {new} nouveaux messages vocaux."
        return f"You have at least {new} new voice messages."
    if fr:
        if not new:
            head = "Vous n'avez aucun nouveau message vocal"
        elif new == 1:
            head = "Vous avez 1 nouveau message vocal"
        else:
            head = f"Vous avez {new} nouveaux messages vocaux"
        tail = "message déjà écouté" if old == 1 else "messages déjà écoutés"
        return f"{head}, et au moins {old} {tail}."
    head = (f"You have {new} new voice message{'s' if new != 1 else ''}" if new
            else "You have no new voice messages")
    return f"{head}, and at least {old} saved."


def spoken_day(day: date, today: date, language: str) -> str:
    """"Saturday 12 December" / "samedi 12 décembre", with the year when it is not this one."""
    weekday = WEEKDAYS[language][day.weekday()]
    month = MONTHS[language][day.month - 1]
    year = f" {day.year}" if day.year != today.year else ""
    return f"{weekday} {day.day} {month}{year}"


def backup_name(policy: Policy, ref: str | None) -> str | None:
    """The policy's name of a backup (a user id or ``@group``), as it is spoken."""
    if not ref:
        return None
    if ref.startswith("@"):
        group = policy.groups.get(ref[1:])
        return display_text(group.name, NAME_LIMIT) if group is not None else None
    user = policy.users.get(ref)
    return display_text(user.name, NAME_LIMIT) if user is not None else None


def absence_sentences(policy: Policy, absence: Absence, now: datetime, language: str
                      ) -> list[str]:
    """An absence said back to its user: the last day away (as the absence greeting and
    the auto-reply say it), the first one when it has not begun, and who takes the calls."""
    today = policy.local(now).date()
    last = spoken_day(last_day_away(policy, absence), today, language)
    begins = policy.local(absence.start).date()
    fr = language == "fr"
    if begins > today:
        first = spoken_day(begins, today, language)
        out = [f"Votre absence est enregistrée du {first} au {last} inclus." if fr else
               f"You are absent from {first} until {last}."]
    else:
        out = [f"Votre absence est enregistrée jusqu'au {last} inclus." if fr else
               f"You are absent until {last}."]
    who = backup_name(policy, absence.backup)
    if who:
        out.append(f"Vos appels sont renvoyés vers {who}." if fr else f"Your calls go to {who}.")
    return out
