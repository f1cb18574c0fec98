"""Deciding what happens to an incoming mail: folder, mobile notification, absence reply.

Called by the Sieve bridge for every delivery, so it must be cheap and must
never raise on odd input: a bad header value simply does not match anything.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from mailcall.core.decisions.absence_text import auto_reply_text
from mailcall.core.decisions.plans import (
    AutoReply,
    FileInto,
    MailAction,
    MailPlan,
    MailRequest,
    Notify,
)
from mailcall.core.policy.model import Policy, User

_BULK = ("bulk", "list", "junk")
_ROBOTS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "do-not-reply")


def message_context(value: str) -> str:
    """The RFC 3458 context token, without parameters or comments, lower-cased."""
    return value.split(";")[0].split("(")[0].strip().lower()


class AutomaticSigns(Protocol):
    """What tells an automatic mail apart: a MailRequest, or the notifier's MailNotice."""

    sender: str
    auto_submitted: str
    list_id: str
    precedence: str


def is_automatic(request: AutomaticSigns) -> str | None:
    """Why this mail must never trigger a notification or a reply (RFC 3834), or None."""
    auto = request.auto_submitted.strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    if request.list_id.strip():
        return "mailing-list mail (List-Id)"
    if request.precedence.strip().lower() in _BULK:
        return f"Precedence: {request.precedence.strip().lower()}"
    local = request.sender.split("@")[0].lower()
    if not request.sender or local in _ROBOTS or local.startswith("owner-"):
        return "null (empty) or robot envelope sender"
    return None


def plan_mail(policy: Policy, request: MailRequest) -> MailPlan:
    uid = policy.by_email.get(request.recipient.strip().lower())
    if uid is None:
        return MailPlan(request, None, (), (f"{request.recipient} is not a user of the policy",))
    user = policy.users[uid]
    at = policy.local(request.at)
    actions: list[MailAction] = []
    why: list[str] = [f"{request.recipient} is {uid} ({user.name}), profile {user.profile}"]
    context = message_context(request.context)
    if context == "voice-message":
        actions.append(FileInto(policy.mail.voice_folder, "voice message (Message-Context)"))
    elif context == "fax-message":
        actions.append(FileInto(policy.mail.fax_folder, "fax message (Message-Context)"))
    automatic = is_automatic(request)
    notify = _notification(policy, user, request, context, at, automatic, why)
    if notify:
        actions.append(notify)
    absence = policy.absence_at(uid, at)
    if absence is None:
        why.append(f"{uid} is not absent: no auto-reply")
    elif not user.features.auto_reply:
        why.append(f"{uid} is absent but profile {user.profile} sends no auto-reply")
    elif automatic:
        why.append(f"no auto-reply to {automatic}")
    elif request.sender.strip().lower() == user.email:
        why.append("no auto-reply to the user's own mail")
    else:
        subject, body = auto_reply_text(policy, uid, absence)
        actions.append(AutoReply(to=request.sender, subject=subject, body=body,
                                 days=policy.mail.auto_reply_days,
                                 why=f"{uid} is absent until {absence.until:%Y-%m-%d %H:%M}"))
    return MailPlan(request, uid, tuple(actions), tuple(why))


def _notification(policy: Policy, user: User, request: MailRequest, context: str, at: datetime,
                  automatic: str | None, why: list[str]) -> Notify | None:
    """The mobile notification the profile asks for, or None with the reason in `why`."""
    notify = user.features.notify
    phone_message = context in ("voice-message", "fax-message")
    granted = notify.voicemail if phone_message else notify.mail
    what = "voicemail and fax" if phone_message else "new mail"
    if not granted:
        why.append(f"profile {user.profile} does not notify the mobile of {what}")
        return None
    if automatic:
        why.append(f"no notification for {automatic}: it could loop")
        return None
    if policy.absence_at(user.id, at):
        why.append(f"no notification: {user.id} is absent")
        return None
    if notify.hours != "always":
        open_now = policy.is_open(user.schedule, at)
        if open_now != (notify.hours == "office"):
            why.append(f"no notification at {at:%a %H:%M}: profile notifies only "
                       f"{'during' if notify.hours == 'office' else 'outside'} office hours")
            return None
    if notify.senders:
        sender = request.sender.strip().lower()
        domain = "@" + sender.rpartition("@")[2]
        if sender not in notify.senders and domain not in notify.senders:
            why.append(f"no notification: {sender or 'empty sender'} is not among the senders "
                       "the profile notifies for")
            return None
    # The compiler checked the medium against what the plugins offer and resolved the
    # address the way that medium declares (mailcall.core.contracts.Medium): nothing to
    # look up here, so no medium can make a decision fail.
    medium = user.preferred_medium or notify.media[0]
    return Notify(user=user.id, medium=medium, address=user.notify_address,
                  why=f"profile {user.profile} notifies {what} by {medium}")


def phone_message_notification(policy: Policy, user: User, context: str, at: datetime,
                               why: list[str]) -> Notify | None:
    """The notification of a voicemail or fax mailcall itself deposits.

    Those messages are auto-generated (RFC 3834), so the mail side rightly never
    notifies them; the deposit side does, once, under the same profile rules.
    """
    request = MailRequest(recipient=user.email, sender="", at=at, context=context)
    return _notification(policy, user, request, context, at, None, why)
