"""Opening hours: outside them a user's desk phone is not rung."""

from __future__ import annotations

from mailcall.core.decisions.routing import CallContext


class OpeningHoursRule:
    name = "opening-hours"
    description = "Outside the user's schedule (or on a holiday) the call is off-hours."
    order = 400

    def apply(self, ctx: CallContext) -> None:
        if ctx.user is None or "absent" in ctx.conditions:
            return
        if not ctx.is_open(ctx.user.schedule):
            name = ctx.user.schedule or ctx.policy.organisation.schedule
            ctx.conditions.add("off-hours")
            ctx.explain(f"{ctx.at:%A %Y-%m-%d %H:%M} is outside schedule '{name}'")
