"""A callee state known before ringing (busy or unavailable, e.g. from device state)."""

from __future__ import annotations

from mailcall.core.decisions.routing import CallContext


class KnownStateRule:
    name = "known-state"
    description = "When the caller already knows the callee is busy or unavailable, skip the ring."
    order = 450

    def apply(self, ctx: CallContext) -> None:
        state = ctx.request.state
        if ctx.user is None or state not in ("busy", "unavailable") or ctx.conditions:
            return
        ctx.conditions.add(state)
        ctx.explain(f"{ctx.user.id} is {state}")
