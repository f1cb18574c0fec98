"""Voicemail last, with the greeting that says why the callee could not answer."""

from __future__ import annotations

from mailcall.core.decisions.plans import Hangup, Voicemail
from mailcall.core.decisions.routing import CallContext


class VoicemailRule:
    name = "voicemail"
    description = "End in the user's voicemail, with the absence, busy or unavailable greeting."
    order = 800

    def apply(self, ctx: CallContext) -> None:
        user = ctx.user
        if user is None:
            return
        if not user.features.voicemail.enabled:
            ctx.finish(Hangup(why=f"profile {user.profile} has no voicemail"))
            return
        granted = user.features.greetings
        greeting: str | None
        if "absent" in ctx.conditions:
            greeting = "absence" if "absence" in granted else "unavailable"
        elif "busy" in ctx.conditions:
            greeting = "busy" if "busy" in granted else "unavailable"
        elif ctx.conditions:
            greeting = "unavailable"
        else:
            greeting = None
        why = f"{user.id}'s voicemail" + (f", {greeting} greeting" if greeting else
                                          ", greeting chosen by how the phone answered")
        ctx.finish(Voicemail(mailbox=user.id, greeting=greeting, why=why))
