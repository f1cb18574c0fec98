"""Calls to a group: ring its members by the group's strategy, then overflow, then its mailbox."""

from __future__ import annotations

from mailcall.core.decisions.plans import Endpoint, Hangup, Ring, Voicemail
from mailcall.core.decisions.routing import CallContext


class GroupCallRule:
    name = "group-call"
    description = "Ring a group's available members (all at once or in order), then its overflow."
    order = 200

    def apply(self, ctx: CallContext) -> None:
        group = ctx.group
        if group is None:
            return
        if not ctx.is_open(group.schedule):
            ctx.explain(f"group {group.id} is closed at {ctx.at:%a %H:%M}")
        else:
            ring_group(ctx, group.id, why=f"group {group.id} ({group.strategy})")
            if group.overflow:
                ctx.explain(f"nobody in {group.id} answered: overflow to {group.overflow}")
                ring_ref(ctx, group.overflow, why=f"overflow of group {group.id}")
        if group.mailbox:
            ctx.finish(Voicemail(mailbox=group.mailbox, greeting="unavailable",
                                 why=f"voicemail of group {group.id}, kept by {group.mailbox}"))
        else:
            ctx.finish(Hangup(why=f"group {group.id} has no mailbox"))


def ring_group(ctx: CallContext, gid: str, why: str) -> None:
    group = ctx.policy.groups[gid]
    members = []
    for member in group.members:
        user = ctx.policy.users[member]
        blocked = ctx.reachable(user)
        if blocked:
            ctx.explain(f"{member} of group {gid} is skipped: {blocked}")
        elif member in ctx.rung:
            ctx.explain(f"{member} of group {gid} is not rung again: already in the plan")
        else:
            members.append(user)
    if not members:
        ctx.explain(f"nobody in group {gid} can take the call now")
        return
    if group.strategy == "all":
        targets = tuple(t for u in members for t in ctx.endpoints(u))
        ctx.rung.update(u.id for u in members)
        if targets:
            ctx.add(Ring(targets=targets, seconds=group.ring_time, who=f"@{gid}", why=why))
    else:
        for user in members:
            ctx.ring_user(user, group.ring_time, f"{why}: {user.id}")


def ring_ref(ctx: CallContext, ref: str, why: str, depth: int = 0) -> None:
    """Ring a user or "@group"; an unreachable user hands on to their own backups."""
    if depth > 8 or ref in ctx.tried:
        return
    ctx.tried.add(ref)
    if ref.startswith("@"):
        ring_group(ctx, ref[1:], why)
        return
    user = ctx.policy.users[ref]
    blocked = ctx.reachable(user)
    if blocked is None:
        ctx.ring_user(user, user.features.ring_time, why)
        return
    absence = ctx.policy.absence_at(user.id, ctx.at)
    nxt = ((absence.backup,) if absence and absence.backup else ()) + user.backups
    ctx.explain(f"{ref} is {blocked}: " + (f"trying {', '.join(nxt)} instead" if nxt
                                            else "nobody to hand on to"))
    for other in nxt:
        ring_ref(ctx, other, f"{why}, for {ref} ({blocked})", depth + 1)


def ring_number(ctx: CallContext, number: str, user: str, seconds: int, why: str) -> None:
    ctx.add(Ring(targets=(Endpoint("number", number, user),), seconds=seconds, who=user, why=why))
