"""The words of a notification, in the user's language.

Sender and subject are the mail's own text, chosen by whoever sent it: they go
through ``display_text`` (the one rule for showing outside text), so no
control, bidi or format character reaches an SMS, a webhook or a log line.
"""

from __future__ import annotations

from mailcall.core.contracts import VoiceCounts
from mailcall.core.decisions.plans import Notify
from mailcall.core.policy.model import Policy
from mailcall.core.text import display_text

from .notice import MailNotice

SENDER_LIMIT = 100
SUBJECT_LIMIT = 160

_TEXT = {
    "fr": ("Nouveau courriel de {sender}", "De : {sender}\nObjet : {subject}"),
    "en": ("New mail from {sender}", "From: {sender}\nSubject: {subject}"),
}
# Voicemail and fax deposited by mailcall itself: the subject line says what it is.
_PHONE_TEXT = {
    "fr": ("Nouveau message de {sender}", "De : {sender}\n{subject}"),
    "en": ("New message from {sender}", "From: {sender}\n{subject}"),
}


_WAITING = {
    "fr": ("{n} nouveau message vocal", "{n} nouveaux messages vocaux"),
    "en": ("{n} new voice message", "{n} new voice messages"),
}


def render(policy: Policy, notification: Notify, notice: MailNotice,
           voice: VoiceCounts | None = None) -> tuple[str, str]:
    """(subject, text) of `notification` about `notice`; `voice`, the user's voice folder
    as the lamp counts it, adds "3 new voice messages" (never said when unknown)."""
    user = policy.users.get(notification.user)
    lang = user.language if user and user.language in _TEXT else "en"
    subject_t, text_t = (_TEXT if notice.origin == "mail" else _PHONE_TEXT)[lang]
    sender = display_text(notice.from_header or notice.sender, SENDER_LIMIT)
    subject = display_text(notice.subject, SUBJECT_LIMIT)
    text = text_t.format(sender=sender, subject=subject)
    if voice is not None and voice.new > 0:
        one, many = _WAITING[lang]
        text += "\n" + (one if voice.new == 1 else many).format(n=voice.new)
    return subject_t.format(sender=sender), text
