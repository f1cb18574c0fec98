"""Who is being called: the extension or number, looked up in the policy's indexes."""

from __future__ import annotations

from mailcall.core.decisions.plans import Hangup
from mailcall.core.decisions.routing import CallContext
from mailcall.core.policy.numbers import find_owner


class CalleeRule:
    name = "callee"
    description = "Find the user or group that owns the dialled extension or number."
    order = 100

    def apply(self, ctx: CallContext) -> None:
        dialled = ctx.request.callee.strip()
        policy = ctx.policy
        owner = find_owner(policy, dialled)
        if owner is None:
            ctx.explain(f"nobody has extension or number {dialled!r} in the policy")
            ctx.finish(Hangup(why=f"{dialled!r} is not in the policy"))
            return
        ctx.callee = owner
        if owner.startswith("@"):
            ctx.group = policy.groups[owner[1:]]
            ctx.explain(f"{dialled} is group {ctx.group.id} ({ctx.group.name})")
        else:
            ctx.user = policy.users[owner]
            ctx.explain(f"{dialled} is {ctx.user.id} ({ctx.user.name}), profile "
                        f"{ctx.user.profile}")
