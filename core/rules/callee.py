"""Who is being called: the extension or number, looked up in the policy's indexes."""

from __future__ import annotations

import phonenumbers

from ..plans import Hangup
from ..routing import CallContext


class CalleeRule:
    name = "callee"
    description = "Find the user or group that owns the dialled extension or number."
    order = 100

    def apply(self, ctx: CallContext) -> None:
        dialled = ctx.request.callee.strip()
        policy = ctx.policy
        owner = policy.by_extension.get(dialled) or policy.by_number.get(dialled)
        if owner is None and not dialled.startswith("+"):
            # National forms ("01 40 00 02 01") need the parser; E.164 was looked up as is.
            owner = policy.by_number.get(_e164(dialled, policy.organisation.country) or "")
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


def _e164(number: str, country: str) -> str | None:
    try:
        parsed = phonenumbers.parse(number, country)
    except phonenumbers.NumberParseException:
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
