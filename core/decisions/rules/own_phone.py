"""Ring the callee's own phones first, when nothing says they cannot answer."""

from __future__ import annotations

from mailcall.core.decisions.plans import Ring
from mailcall.core.decisions.routing import CallContext


class OwnPhoneRule:
    name = "own-phone"
    description = "Ring the user's extensions for the profile's ring time."
    order = 500

    def apply(self, ctx: CallContext) -> None:
        user = ctx.user
        if user is None:
            return
        if ctx.conditions:
            ctx.explain(f"{user.id}'s phone is not rung ({', '.join(sorted(ctx.conditions))})")
            return
        targets = ctx.endpoints(user)
        if not targets:
            ctx.explain(f"{user.id} has no extension")
            return
        ctx.rung.add(user.id)
        ctx.add(Ring(targets=targets, seconds=user.features.ring_time, who=user.id,
                     why=f"{user.id}'s own phone", own=True))
