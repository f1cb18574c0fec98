"""Deciding how a voicemail or a fax is packaged and who is told about it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from mailcall.core.decisions.mailing import phone_message_notification
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.policy.model import Policy


class UnknownMailbox(LookupError):
    """The deposit names a mailbox the policy does not have."""


def plan_deposit(policy: Policy, *, mailbox: str, kind: Literal["voice", "fax"],
                 at: datetime) -> DepositPlan:
    user = policy.users.get(mailbox)
    if user is None:
        raise UnknownMailbox(f"mailbox {mailbox!r} is not a user of the policy")
    f = user.features
    why = [f"{kind} message for {user.id} ({user.name}) to {user.email}, "
           f"left {policy.local(at):%Y-%m-%d %H:%M %Z}"]
    audio = f.voicemail.formats[0]
    if kind == "voice":
        why.append(f"audio as {audio} (first of profile formats {', '.join(f.voicemail.formats)})")
    else:
        why.append(f"fax attached as {' and '.join(f.fax.formats)}")
    context = "voice-message" if kind == "voice" else "fax-message"
    notify = phone_message_notification(policy, user, context, policy.local(at), why)
    return DepositPlan(
        mailbox=user.id, recipient=user.email, display_name=user.name, language=user.language,
        kind=kind, audio_format=audio, fax_formats=f.fax.formats,
        transcription=f.transcription and kind == "voice",
        notify=(notify,) if notify else (),
        explanation=tuple(why),
    )
