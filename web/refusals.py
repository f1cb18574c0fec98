"""The user store's refusals in the page's language.

The store (:mod:`mailcall.userstore.fields`, :mod:`mailcall.userstore.service`) has one
set of messages, in English, shared with the CLI, and no message codes: a refusal is
a :class:`~mailcall.userstore.errors.FieldProblem` (the field, a sentence). The page
words each one for an employee, in English or French, by the field and the kind of
refusal, recognised from the sentence's fixed parts. Nothing here decides what is
allowed: the store refused already; this only says it in the reader's words.

A sentence no pattern recognises (the store's wording changed) is still shown, in
English, after a translated "refused", and logged once so that the table is updated
(tests/web/test_refusals.py makes every refusal the store can give go through a
pattern, so such drift fails a test first).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from mailcall.core.policy.model import Policy
from mailcall.core.text import display_text
from mailcall.userstore.errors import FieldProblem
from mailcall.web.i18n import TEXT, Words
from mailcall.web.plan import display_name

log = logging.getLogger("mailcall.web")


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: str
    regex: re.Pattern[str]
    en: str
    fr: str


def _p(kind: str, regex: str, en: str, fr: str) -> Pattern:
    return Pattern(kind, re.compile(regex, re.S), en, fr)


# Order matters where two sentences share a beginning: the more specific comes first.
PATTERNS: tuple[Pattern, ...] = (
    _p("absence.locked", r"profile '(?P<profile>.*)' locks 'reroute': the absence can be set.*",
       "Your profile ({profile}) leaves the choice of who takes your calls to IT: leave "
       "this empty.",
       "Votre profil ({profile}) laisse à l'informatique le choix de qui prend vos appels : "
       "laissez ce champ vide."),
    _p("locked", r"profile '(?P<profile>.*)' locks '(?P<lock>[^']*)': users may not change it.*",
       "Set by IT: your profile ({profile}) locks it; ask IT to change it.",
       "Fixé par l'informatique : votre profil ({profile}) le verrouille ; demandez-lui de "
       "le changer."),
    _p("pin.no_phone", r"profile '(?P<profile>.*)' does not grant mailbox_by_phone.*",
       "Your profile ({profile}) does not open your mailbox by phone: a PIN would open "
       "nothing.",
       "Votre profil ({profile}) ne donne pas accès à votre boîte par téléphone : un code "
       "PIN n'ouvrirait rien."),
    _p("pin.not_hash", r"must be a PIN hash made by mailcall.*",
       "The PIN could not be saved; try again.",
       "Le code PIN n'a pas pu être enregistré ; réessayez."),
    _p("bool.bad", r"must be on or off \(true/false\), not .*",
       "Choose on or off.", "Choisissez oui ou non."),
    _p("bool.not_granted", r"(?P<who>.+) does not grant (?P<key>[\w.]+) \(it is off there\).*",
       "{who} does not give you this: you may only switch it off.",
       "{who} ne vous le donne pas : vous pouvez seulement le désactiver."),
    _p("medium.no_mobile", r"is 'sms' but user '.*' has no mobile number.*",
       "SMS needs a mobile number, and IT has none for you: ask IT to add it.",
       "Les SMS demandent un numéro de mobile, et l'informatique n'en a pas pour vous : "
       "demandez-lui de l'ajouter."),
    _p("no_mobile", r"user '.*' has no mobile number in the policy file.*",
       "IT has no mobile number for you: ask IT to add it.",
       "L'informatique n'a pas de numéro de mobile pour vous : demandez-lui de l'ajouter."),
    _p("choice.bad", r"must be one of (?P<options>.*), not (?P<value>.*)",
       "{value} is not one of the choices offered.",
       "{value} ne fait pas partie des choix proposés."),
    _p("choice.only", r"(?P<who>.+) grants (?P<key>[\w.]+) = '(?P<granted>[^']*)' only.*",
       "{who} gives only this choice: {granted}.",
       "{who} ne donne que ce choix : {granted}."),
    _p("list.bad", r"must be a list of names, e\.g\. .*",
       "Choose among the boxes offered.", "Choisissez parmi les cases proposées."),
    _p("list.twice", r"lists the same value twice",
       "The same choice is given twice.", "Le même choix est donné deux fois."),
    _p("greeting.unknown", r"(?P<values>.*): not a kind of greeting \(they are .*\)",
       "{values}: not a kind of greeting.", "{values} : pas un type d'annonce."),
    _p("media.empty", r"must name at least one medium.*",
       "Tick at least one way to be notified; to get no notifications, untick the mail and "
       "voicemail notifications instead.",
       "Cochez au moins un moyen de notification ; pour ne plus être prévenu·e, décochez "
       "plutôt les notifications d'e-mails et de messages vocaux."),
    _p("list.not_granted",
       r"(?P<values>.*) not granted by (?P<who>.+) \((?P<key>[\w.]+) = (?P<granted>.*)\); "
       r"users may only choose among those",
       "{values}: not given by {who} (you may choose among: {granted}).",
       "{values} : pas donné par {who} (vous pouvez choisir parmi : {granted})."),
    _p("medium.bad", r"must be the name of a medium, e\.g\. sms",
       "Choose one of the ways offered.", "Choisissez l'un des moyens proposés."),
    _p("medium.narrowed",
       r"'(?P<value>.*)' is not among the media (?P<who>.+) grants "
       r"\(notify\.media = (?P<granted>.*)\) \(narrowed to (?P<media>.*)\)",
       "The way {value} is not among those you keep ({media}): tick it there too, or "
       "choose another.",
       "Le moyen {value} ne fait pas partie de ceux que vous gardez ({media}) : cochez-le "
       "aussi, ou choisissez-en un autre."),
    _p("medium.not_granted",
       r"'(?P<value>.*)' is not among the media (?P<who>.+) grants "
       r"\(notify\.media = (?P<granted>.*)\)",
       "The way {value} is not given by {who} (it gives: {granted}).",
       "Le moyen {value} n'est pas donné par {who} (il donne : {granted})."),
    _p("media.left_out",
       r"leaves out '(?P<value>.*)', (?P<whose>.*); set preferred_medium to one of "
       r"(?P<media>.*) in the same change",
       "This leaves out {value}, the way your notifications are sent: choose one of "
       "{media} as that way in the same change.",
       "Cela retire {value}, le moyen par lequel vos notifications partent : choisissez "
       "{media} comme moyen dans le même changement."),
    _p("backups.bad", r"must be a list of user ids or @groups.*",
       "Give each backup a position, or leave it unused.",
       "Donnez une position à chaque remplaçant, ou laissez-le inutilisé."),
    _p("backups.twice", r"lists the same backup twice",
       "The same backup is given twice.", "Le même remplaçant est donné deux fois."),
    _p("ref.unknown", r"'(?P<ref>.*)' is not a defined user or @group.*",
       "{ref}: nobody of that name (a colleague's id, or @group).",
       "{ref} : personne de ce nom (l'identifiant d'un collègue, ou @groupe)."),
    _p("backups.not_allowed",
       r"'(?P<ref>.*)' is not among the backups the policy file gives user '.*' "
       r"\((?P<allowed>.*)\); users may only reorder or drop those.*",
       "{ref} is not among the backups IT gives you ({allowed}): you may reorder or drop "
       "those only; ask IT to add another.",
       "{ref} ne fait pas partie des remplaçants que l'informatique vous donne ({allowed}) : "
       "vous pouvez seulement les réordonner ou en retirer ; demandez-lui d'en ajouter."),
    _p("nothing", r"nothing to set; .*",
       "Nothing was changed.", "Rien n'a été changé."),
    _p("not_setting", r"is not a setting users may change.*",
       "This is not a setting you may change.",
       "Ce n'est pas un réglage que vous pouvez changer."),
    _p("date.bad", r"(?P<text>.*) is not a date or date-time like .*",
       "{text} is not a date: write it like 2026-12-12, or 2026-12-12 18:00.",
       "{text} n'est pas une date : écrivez-la comme 2026-12-12, ou 2026-12-12 18:00."),
    _p("date.past", r"(?P<end>.*) is in the past \(now: (?P<now>.*)\); an absence must end later",
       "{end} is in the past (now: {now}): an absence must end later.",
       "{end} est déjà passé (il est {now}) : une absence doit finir plus tard."),
    _p("date.window", r"(?P<when>.*) is not between (?P<lowest>.*) and (?P<highest>.*); "
       r"an absence must lie between one year ago and 5 years ahead",
       "{when} is too far away: an absence lies between one year ago and 5 years ahead "
       "({lowest} to {highest}).",
       "{when} est trop loin : une absence se situe entre il y a un an et dans 5 ans "
       "(du {lowest} au {highest})."),
    _p("date.order", r"ends \((?P<end>.*)\) before it starts \((?P<begin>.*)\).*",
       "It ends ({end}) before it starts ({begin}): give a return after the start.",
       "Elle finit ({end}) avant de commencer ({begin}) : indiquez un retour après le début."),
    _p("absence.no_reroute", r"(?P<who>.+) does not reroute the calls of an absent user.*",
       "{who} does not reroute your calls while you are away: leave this empty.",
       "{who} ne renvoie pas vos appels pendant vos absences : laissez ce champ vide."),
    _p("absence.self", r"an absent user cannot be their own backup",
       "You cannot be your own backup.", "Vous ne pouvez pas être votre propre remplaçant·e."),
    _p("message.control",
       r"must not contain control or invisible characters: found (?P<code>U\+[0-9A-F]+) "
       r"at character (?P<at>\d+)",
       "Contains an invisible or control character ({code}, character {at}): remove it.",
       "Contient un caractère invisible ou de contrôle ({code}, caractère {at}) : "
       "retirez-le."),
    _p("message.long", r"is (?P<n>\d+) characters long; at most (?P<limit>\d+).*",
       "{n} characters: at most {limit} (it is read aloud and sent as the auto-reply).",
       "{n} caractères : {limit} au plus (il est lu aux appelants et envoyé en réponse "
       "automatique)."),
    _p("absence.overlap",
       r"overlaps absence #(?P<id>\d+) \((?P<start>.*) to (?P<until>.*)\) already set.*",
       "It overlaps your absence from {start} to {until}: remove that one first.",
       "Elle chevauche votre absence du {start} au {until} : supprimez d'abord celle-là."),
    _p("absence.unknown_id", r"#(?P<id>\d+) is not an absence of .*",
       "This absence no longer exists (already removed?).",
       "Cette absence n'existe plus (déjà supprimée ?)."),
    _p("user.unknown", r"'.*' is not a user of the policy file.*",
       "Your account is no longer set up in mailcall: ask IT.",
       "Votre compte n'est plus configuré dans mailcall : demandez à l'informatique."),
)

_WHO_PROFILE = re.compile(r"profile '(?P<profile>.*)'", re.S)
_WHO = {"profile": {"en": "your profile ({profile})", "fr": "votre profil ({profile})"},
        "file": {"en": "IT's policy file (a setting of yours there)",
                 "fr": "le fichier de politique de l'informatique (un réglage à votre nom)"}}
_FALLBACK = {"en": "Refused: {message}", "fr": "Refusé : {message} (message en anglais)"}
_warned: set[str] = set()


def kind_of(problem: FieldProblem) -> str | None:
    """Which refusal the store's sentence is (the pattern's kind), or None if unknown."""
    for pattern in PATTERNS:
        if pattern.regex.fullmatch(problem.message):
            return pattern.kind
    return None


def _who(text: str, lang: str) -> str:
    m = _WHO_PROFILE.fullmatch(text)
    if m:
        return _WHO["profile"][lang].format(profile=m.group("profile"))
    return _WHO["file"][lang]


def _media(listed: str, lang: str) -> str:
    """Media names ("sms, email") in the reader's words ("SMS, e-mail")."""
    words = Words(lang)
    return ", ".join(words(f"medium.{m}") if f"medium.{m}" in TEXT else m
                     for m in listed.split(", "))


def _names(listed: str, policy: Policy | None) -> str:
    """Colleagues' ids ("bernard, @reception") as the policy names them: an employee
    knows "Bernard Petit", not the id IT gave him."""
    if policy is None or listed == "nothing":
        return listed
    return ", ".join(display_name(policy, ref) for ref in listed.split(", "))


def translate(problem: FieldProblem, lang: str, policy: Policy | None = None) -> str:
    """`problem` said for an employee in `lang` ("en" or "fr").

    Captured parts (a typed date, a colleague's id) are outside text: they go
    through display_text here and are escaped by the template. With `policy`,
    colleagues' ids are shown by their names.
    """
    lang = lang if lang in ("en", "fr") else "en"
    for pattern in PATTERNS:
        m = pattern.regex.fullmatch(problem.message)
        if m is None:
            continue
        groups = m.groupdict()
        if pattern.kind == "backups.not_allowed":
            groups = {k: _names(v, policy) for k, v in groups.items()}
        parts = {k: display_text(v, 80 if k != "allowed" else 400) for k, v in groups.items()}
        if "who" in parts:
            parts["who"] = _who(m.group("who"), lang)
        if pattern.kind == "choice.only" and f"hours.{parts['granted']}" in TEXT:
            parts["granted"] = Words(lang)(f"hours.{parts['granted']}")
        for key in ("value", "media", "granted", "values"):
            if key in parts and (pattern.kind.startswith("medi") or m.groupdict().get("key")
                                 == "notify.media"):
                parts[key] = _media(parts[key], lang)
        template = getattr(pattern, lang)
        text = template.format(**parts)
        # A sentence starts with a capital, but a typed id or date is shown as typed.
        if not template.startswith("{") or template.startswith("{who}"):
            text = text[:1].upper() + text[1:]
        return text
    if problem.message not in _warned:
        _warned.add(problem.message)
        log.warning("web: no translation for the user store's refusal of %s: %r; it is "
                    "shown in English (add a pattern to web/refusals.py)", problem.field,
                    problem.message)
    return _FALLBACK[lang].format(message=display_text(problem.message, 400))
