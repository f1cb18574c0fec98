"""Follow-me: a customer-facing user's mobile rings after the desk phone."""

from __future__ import annotations

from mailcall.core.decisions.routing import CallContext
from mailcall.core.decisions.rules.group_call import ring_number

# A busy desk phone means the user is at the desk, on another call: the mobile would not help.
_AFTER = ("no-answer", "unavailable")


class MobileRule:
    name = "mobile"
    description = ("Ring the user's mobile when the profile reroutes to it and the desk did "
                   "not answer.")
    order = 600

    def apply(self, ctx: CallContext) -> None:
        user = ctx.user
        if user is None or not user.mobile:
            return
        reroute = user.features.reroute
        if not (reroute.enabled and reroute.mobile):
            return
        if ctx.conditions & {"absent", "off-hours", "busy"}:
            ctx.explain(f"{user.id}'s mobile is not rung ({', '.join(sorted(ctx.conditions))})")
            return
        after = tuple(c for c in _AFTER if c in reroute.on) if not ctx.conditions else ()
        if not ctx.conditions and not after:
            return
        ctx.guard = after
        ring_number(ctx, user.mobile, user.id, user.features.ring_time,
                    f"{user.id}'s mobile (profile {user.profile} reroutes to it)")
        ctx.guard = ()
