"""Rerouting an unreachable user to backup people or groups, in the order the policy gives."""

from __future__ import annotations

from mailcall.core.decisions.routing import CallContext
from mailcall.core.decisions.rules.group_call import ring_ref

_DIAL_OUTCOMES = ("busy", "no-answer", "unavailable")


class BackupsRule:
    name = "backups"
    description = ("When the user is unreachable and the profile reroutes, ring the absence "
                   "backup, then the user's backups in order.")
    order = 700

    def apply(self, ctx: CallContext) -> None:
        user = ctx.user
        if user is None:
            return
        reroute = user.features.reroute
        if not reroute.enabled:
            ctx.explain(f"profile {user.profile} does not reroute {user.id}'s calls")
            return
        if ctx.conditions:
            applicable = ctx.conditions & set(reroute.on)
            if not applicable:
                ctx.explain(f"no reroute: profile {user.profile} reroutes only on "
                            f"{', '.join(reroute.on)}")
                return
            ctx.guard = ()
        else:
            ctx.guard = tuple(c for c in _DIAL_OUTCOMES if c in reroute.on)
            if not ctx.guard:
                ctx.explain(f"no reroute: profile {user.profile} reroutes only on "
                            f"{', '.join(reroute.on)}")
                return
            if set(ctx.guard) == set(_DIAL_OUTCOMES):
                ctx.guard = ()
        order: list[str] = []
        absence = ctx.policy.absence_at(user.id, ctx.at)
        if absence and absence.backup:
            order.append(absence.backup)
        order.extend(b for b in user.backups if b not in order)
        if not order:
            ctx.explain(f"{user.id} has no backup")
        for ref in order:
            ring_ref(ctx, ref, f"backup of {user.id}")
        ctx.guard = ()
