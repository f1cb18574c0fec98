"""The human text of deposit messages, in the organisation's or the user's language.

Kept apart from MIME assembly so a translator edits one table and never touches
header code. Dates are spelled out by hand (no locale switching: ``setlocale``
is process-wide state and the worker formats fr and en messages side by side).
Unknown languages fall back to English.
"""

from __future__ import annotations

from datetime import datetime

from mailcall.core.policy.value_checks import LANGUAGES

_DAYS = {
    "fr": ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "fr": (
        "janvier",
        "février",
        "mars",
        "avril",
        "mai",
        "juin",
        "juillet",
        "août",
        "septembre",
        "octobre",
        "novembre",
        "décembre",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}

_REASONS = {
    "fr": {
        "busy": "la ligne était occupée",
        "no-answer": "personne n'a répondu",
        "unavailable": "le poste était injoignable",
        "absent": "le destinataire est absent",
        "off-hours": "l'appel est arrivé en dehors des heures d'ouverture",
        "direct": "l'appelant a demandé directement la messagerie",
    },
    "en": {
        "busy": "the line was busy",
        "no-answer": "nobody answered",
        "unavailable": "the phone could not be reached",
        "absent": "the recipient is away",
        "off-hours": "the call came in outside office hours",
        "direct": "the caller asked for voicemail directly",
    },
}

_T = {
    "fr": {
        "unknown_caller": "Numéro masqué",
        "voice_subject": "Message vocal de {who} ({duration})",
        "missed_subject": "Appel manqué de {who}",
        "fax_subject": "Télécopie de {who} ({pages})",
        "fax_failed_subject": "Télécopie non reçue de {who}",
        "pages": "{n} page",
        "pages_plural": "{n} pages",
        "caller": "Appelant : {who}",
        "number": "Numéro : {number}",
        "call_back": "Rappeler : {uri}",
        "when": "Date : {when}",
        "duration": "Durée : {duration}",
        "why": "Messagerie car {reason}.",
        "voice_intro": "Vous avez reçu un message vocal.",
        "voice_attached": "Le message est joint ({fmt}).",
        "missed_intro": "Vous avez manqué un appel ; aucun message n'a pu être joint.",
        "missed_why": "Raison : {problem}.",
        "fax_intro": "Vous avez reçu une télécopie.",
        "fax_pages": "Pages : {pages}",
        "station": "Station émettrice : {station}",
        "fax_attached": "La télécopie est jointe en PDF.",
        "fax_failed_intro": "Une télécopie n'a pas pu être reçue.",
        "fax_failed_reason": "Raison : {reason}",
        "fax_failed_advice": "Demandez à l'expéditeur de la renvoyer.",
        "at": "à",
        "no_recording": "l'enregistrement est introuvable",
        "empty_recording": "l'enregistrement est vide",
        "corrupt_recording": "l'enregistrement est illisible",
        "encode_failed": "la conversion audio a échoué ; le message est joint tel qu'enregistré",
    },
    "en": {
        "unknown_caller": "Withheld number",
        "voice_subject": "Voicemail from {who} ({duration})",
        "missed_subject": "Missed call from {who}",
        "fax_subject": "Fax from {who} ({pages})",
        "fax_failed_subject": "Fax not received from {who}",
        "pages": "{n} page",
        "pages_plural": "{n} pages",
        "caller": "Caller: {who}",
        "number": "Number: {number}",
        "call_back": "Call back: {uri}",
        "when": "When: {when}",
        "duration": "Length: {duration}",
        "why": "Went to voicemail because {reason}.",
        "voice_intro": "You have a new voice message.",
        "voice_attached": "The message is attached ({fmt}).",
        "missed_intro": "You missed a call; no message could be attached.",
        "missed_why": "Reason: {problem}.",
        "fax_intro": "You have received a fax.",
        "fax_pages": "Pages: {pages}",
        "station": "Sending station: {station}",
        "fax_attached": "The fax is attached as a PDF.",
        "fax_failed_intro": "A fax could not be received.",
        "fax_failed_reason": "Reason: {reason}",
        "fax_failed_advice": "Ask the sender to send it again.",
        "at": "at",
        "no_recording": "the recording is missing",
        "empty_recording": "the recording is empty",
        "corrupt_recording": "the recording cannot be read",
        "encode_failed": "audio conversion failed; the message is attached as recorded",
    },
}


def lang(language: str) -> str:
    """The supported language closest to `language` ("fr-CA" → "fr"; unknown → "en")."""
    base = (language or "").split("-")[0].split("_")[0].lower()
    return base if base in LANGUAGES else "en"


def text(language: str, key: str, **values: object) -> str:
    return _T[lang(language)][key].format(**values)


def reason(language: str, why: str) -> str:
    table = _REASONS[lang(language)]
    return table.get(why, table["no-answer"])


def when(language: str, local: datetime) -> str:
    """ "samedi 28 novembre 2026 à 19:05" / "Saturday 28 November 2026 at 19:05"."""
    code = lang(language)
    day = _DAYS[code][local.weekday()]
    month = _MONTHS[code][local.month - 1]
    return f"{day} {local.day} {month} {local.year} {_T[code]['at']} {local:%H:%M} ({local:%Z})"


def duration(language: str, seconds: float) -> str:
    """ "42 s", "1 min 05 s": short enough for a subject line."""
    del language  # the same in fr and en
    total = max(0, round(seconds))
    minutes, secs = divmod(total, 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def pages(language: str, count: int) -> str:
    return text(language, "pages" if count == 1 else "pages_plural", n=count)
