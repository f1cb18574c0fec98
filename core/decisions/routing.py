"""Deciding where a call goes: rules, run in order, build a plan with its reasons.

`plan_call` is a pure function of the policy snapshot and the request: the same
inputs always give the same plan, which is what lets `mailcall route --explain`
show an administrator exactly what a live call will do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from mailcall.core.decisions.plans import CallPlan, CallRequest, Endpoint, Hangup, Ring, Step
from mailcall.core.policy.model import Group, Policy, User

if TYPE_CHECKING:
    from mailcall.core.contracts import CallRule


@dataclass
class CallContext:
    """What the rules share while building one plan."""

    policy: Policy
    request: CallRequest
    at: datetime
    callee: str | None = None
    user: User | None = None
    group: Group | None = None
    conditions: set[str] = field(default_factory=set)
    """What is known before ringing: absent, off-hours, busy, unavailable."""
    steps: list[Step] = field(default_factory=list)
    explanation: list[str] = field(default_factory=list)
    rung: set[str] = field(default_factory=set)
    tried: set[str] = field(default_factory=set)
    """Backups already considered, so a chain never visits anyone twice."""
    finished: bool = False
    open_now: dict[str | None, bool] = field(default_factory=dict)
    guard: tuple[str, ...] = ()
    """Outcomes of the callee's own ring that rings added now depend on (see Ring.after)."""

    def explain(self, line: str) -> None:
        self.explanation.append(line)

    def add(self, step: Step) -> None:
        if len(self.steps) >= self.policy.telephony.max_steps:
            self.explain(f"step '{step.why}' left out: the plan already has "
                         f"{self.policy.telephony.max_steps} steps (telephony.max_steps)")
            return
        if isinstance(step, Ring) and self.guard and not step.after:
            step = Ring(step.targets, step.seconds, step.who, step.why, step.own, self.guard)
        self.steps.append(step)

    def finish(self, step: Step | None = None) -> None:
        if step is not None:
            self.add(step)
        self.finished = True

    def endpoints(self, user: User) -> tuple[Endpoint, ...]:
        return tuple(Endpoint("extension", e, user.id) for e in user.extensions)

    def ring_user(self, user: User, seconds: int, why: str, *, after: tuple[str, ...] = ()) -> bool:
        """Add a ring of `user`'s phones unless already rung or phoneless; True if added."""
        if user.id in self.rung:
            self.explain(f"{user.id} is not rung again: already in the plan")
            return False
        targets = self.endpoints(user)
        if not targets:
            self.explain(f"{user.id} has no extension to ring")
            return False
        self.rung.add(user.id)
        self.add(Ring(targets=targets, seconds=seconds, who=user.id, why=why, after=after))
        return True

    def reachable(self, user: User) -> str | None:
        """Why `user` cannot take a call now (absent, closed), or None."""
        if self.policy.absence_at(user.id, self.at):
            return "absent"
        if not self.is_open(user.schedule):
            return "outside opening hours"
        return None

    def is_open(self, schedule: str | None) -> bool:
        """Opening hours at the call's time, worked out once per schedule per call."""
        name = schedule or self.policy.organisation.schedule
        known = self.open_now.get(name)
        if known is None:
            found = self.policy.schedules.get(name) if name else None
            known = self.open_now[name] = found is None or found.is_open(self.at)
        return known


def plan_call(policy: Policy, request: CallRequest,
              rules: Iterable[CallRule] | None = None) -> CallPlan:
    """The ordered plan for one call, with a plain-language reason for each choice."""
    if rules is None:
        from mailcall.core.decisions.rules import default_rules

        rules = default_rules()
    at = policy.local(request.at)
    ctx = CallContext(policy=policy, request=request, at=at)
    if not isinstance(rules, SortedRules):
        rules = sorted(rules, key=lambda r: r.order)
    for rule in rules:
        if ctx.finished:
            break
        rule.apply(ctx)
    if not ctx.steps:
        ctx.finish(Hangup(why="nothing left to try"))
    return CallPlan(request=request, callee=ctx.callee, steps=tuple(ctx.steps),
                    explanation=tuple(ctx.explanation))


class SortedRules(tuple):
    """Rules already in running order, so a live call does not sort them again."""


def collect_rules(results: Sequence[Sequence[CallRule]]) -> SortedRules:
    """Flatten what `mailcall_call_rules` returned by every plugin, in running order."""
    return SortedRules(sorted((rule for batch in results for rule in batch),
                              key=lambda r: r.order))
