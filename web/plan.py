"""The call plan a user would get now, with their own settings, told as one sentence.

The plan comes from the routing core's pure function (``plan_call``), given the
policy refined by the user store exactly as the router gets it
(:mod:`mailcall.userstore.overlay`): the page shows what the router decides, not
a second guess of it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from mailcall.core.decisions.plans import CallPlan, CallRequest, Hangup, Ring, Voicemail
from mailcall.core.decisions.routing import plan_call
from mailcall.core.policy.model import Policy
from mailcall.web.i18n import Words


def current_plan(view: Policy, user_id: str, at: datetime, rules: Any = None
                 ) -> CallPlan | None:
    """The plan of a call to the user's first extension (or number) at `at`, decided
    with `view` (the policy refined by the store)."""
    user = view.users[user_id]
    dialled = (user.extensions or user.numbers or (None,))[0]
    if dialled is None:
        return None
    return plan_call(view, CallRequest(callee=dialled, caller="", at=at), rules)


def plan_sentence(policy: Policy, plan: CallPlan | None, user_id: str, t: Words,
                  fmt: Callable[[datetime], str], absent_until: datetime | None, *,
                  closed: bool = False) -> str:
    """"Your phone rings for 20 s. If you do not answer within 20 s: Bernard, then ..."."""
    if plan is None:
        return t("plan.none")
    steps = list(plan.steps)
    own = steps[0] if steps and isinstance(steps[0], Ring) and steps[0].own else None
    rest = steps[1:] if own is not None else steps
    chain = t("plan.sep").join(_step(policy, s, user_id, t) for s in rest)
    if own is not None:
        first = t("plan.own", seconds=own.seconds)
        return f"{first} {t('plan.then', seconds=own.seconds, chain=chain)}" if chain else first
    if absent_until is not None:
        return t("plan.absent", until=fmt(absent_until), chain=chain)
    if closed:
        return t("plan.closed", chain=chain)
    return t("plan.only", chain=chain)


def _step(policy: Policy, step: Any, user_id: str, t: Words) -> str:
    if isinstance(step, Ring):
        if step.who == user_id:
            return t("plan.mobile") if all(e.kind == "number" for e in step.targets) \
                else policy.users[user_id].name
        return display_name(policy, step.who)
    if isinstance(step, Voicemail):
        if step.mailbox != user_id:
            return t("plan.voicemail.other", who=display_name(policy, step.mailbox))
        key = f"plan.voicemail.{step.greeting}" if step.greeting else "plan.voicemail"
        return t(key) if key in _KNOWN else t("plan.voicemail")
    if isinstance(step, Hangup):
        return t("plan.hangup")
    # A step a third-party rule made: its class name means nothing to an employee.
    return t("plan.other_step")


_KNOWN = {"plan.voicemail.absence", "plan.voicemail.unavailable", "plan.voicemail.busy"}


def display_name(policy: Policy, ref: str) -> str:
    """A user's or group's name as the policy gives it (escaped by the template)."""
    if ref.startswith("@"):
        group = policy.groups.get(ref[1:])
        return group.name if group else ref
    user = policy.users.get(ref)
    return user.name if user else ref
