"""Deciding how a voicemail or a fax is packaged and who is told about it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from .model import Policy
from .plans import DepositPlan


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
    if f.notify.voicemail:
        # One notification path for mail and voice alike: the Sieve bridge tells the mobile
        # when this message is delivered, so a voicemail is never announced twice.
        why.append("the mobile is notified by the Sieve bridge when the message is delivered")
    return DepositPlan(
        mailbox=user.id, recipient=user.email, display_name=user.name, language=user.language,
        kind=kind, audio_format=audio, fax_formats=f.fax.formats,
        transcription=f.transcription and kind == "voice", notify=(),
        explanation=tuple(why),
    )
