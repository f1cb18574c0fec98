"""What the menu says that depends on the message: envelopes and mail counts, in fr and en.

Short sentences: the speech engine makes one audio chunk per sentence, so the
first is playing while the next is made, and a key cuts in between.
Who left a voicemail is a colleague's name when the calling number belongs to
someone in the policy (the name written there, never the one the caller sent),
otherwise the number, grouped the way the organisation's country writes it,
otherwise "unknown caller". Everything from outside goes through
``display_text`` (mailcall.core.text), once more, before it is spoken.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import phonenumbers

from mailcall.core.policy.model import Policy
from mailcall.core.policy.numbers import find_owner
from mailcall.core.text import display_text

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


def voice_envelope(policy: Policy, message: Any, position: int, total: int | None,
                   now: datetime, language: str) -> list[str]:
    """The sentences said before a voicemail's audio: which, who, when, how long."""
    fr = language == "fr"
    kind = getattr(message, "kind", "voice")
    noun = "Fax" if kind == "fax" else "Message"
    new = not getattr(message, "seen", False)
    if fr:
        first = f"{noun} {position + 1}{_of(total, 'fr')}" + (", nouveau." if new else ".")
    else:
        first = ("New " + noun.lower() if new else noun) + f" {position + 1}{_of(total, 'en')}."
    number = getattr(message, "caller_number", None)
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
    seconds = getattr(message, "duration", None)
    if seconds:
        out.append(("Durée : " if fr else "Length: ") + duration(seconds, language) + ".")
    return out


def mail_envelope(message: Any, position: int, total: int | None, now: datetime,
                  language: str) -> list[str]:
    """The sentences said before a mail's text: which, from whom, about what, when."""
    fr = language == "fr"
    name = display_text(getattr(message, "sender_name", ""), NAME_LIMIT)
    address = display_text(getattr(message, "sender_address", ""), NAME_LIMIT)
    sender = name or address or ("expéditeur inconnu" if fr else "unknown sender")
    subject = display_text(getattr(message, "subject", ""), SUBJECT_LIMIT)
    kind = getattr(message, "kind", "mail")
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


def attachments(items: Any, language: str) -> list[str]:
    """One sentence per attachment, by name and type ("Attachment: offer.pdf, PDF.")."""
    out = []
    for item in list(items or ())[:10]:
        name = display_text(getattr(item, "name", ""), 80) or "?"
        kind = display_text(getattr(item, "mime_type", ""), 60).split("/")[-1].upper()
        out.append(("Pièce jointe : " if language == "fr" else "Attachment: ") +
                   f"{name}, {kind}.")
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
