"""Absences: one fact that the phone side (reroute, greeting) and the mail side both obey."""

from __future__ import annotations

from mailcall.core.decisions.routing import CallContext


class AbsenceRule:
    name = "absence"
    description = "An absent user's phone is not rung; the absence's backup comes first."
    order = 300

    def apply(self, ctx: CallContext) -> None:
        if ctx.user is None:
            return
        absence = ctx.policy.absence_at(ctx.user.id, ctx.at)
        if absence is None:
            return
        ctx.conditions.add("absent")
        backup = f", backup {absence.backup}" if absence.backup else ""
        ctx.explain(f"{ctx.user.id} is absent from {absence.start:%Y-%m-%d %H:%M} until "
                    f"{absence.until:%Y-%m-%d %H:%M}{backup}")
