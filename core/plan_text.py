"""Call and mail plans as ``mailcall route`` and ``mailcall mail`` print them.

Kept apart from the command line so that the text an administrator reads has one
home, next to nothing else: the Dial() arguments shown are built by
``mailcall.core.policy.telephony``, the same code the FastAGI route handler dials with.
"""

from __future__ import annotations

from mailcall.core.decisions.plans import CallPlan, MailPlan, Ring, Voicemail
from mailcall.core.policy.model import Policy
from mailcall.core.policy.telephony import dial_argument


def format_call_plan(policy: Policy, plan: CallPlan, *, explain: bool) -> str:
    r = plan.request
    head = (f"Call to {r.callee}" + (f" from {r.caller}" if r.caller else "") +
            f" at {r.at:%a %Y-%m-%d %H:%M %Z}" + (f" (callee {r.state})"
                                                  if r.state != "unknown" else ""))
    lines = [head, "", "Plan:"]
    for n, step in enumerate(plan.steps, 1):
        if isinstance(step, Ring):
            cond = f" if the callee's phone gave {' or '.join(step.after)}" if step.after else ""
            dial = dial_argument(policy, step.targets, step.seconds)
            shown = f"Dial({dial.text})" if dial.text else "nothing can be dialled, step skipped"
            lines.append(f"  {n}. ring {step.who}: {shown}{cond}  -- {step.why}")
            lines += [f"     left out: {refusal}" for refusal in dial.refused]
        elif isinstance(step, Voicemail):
            greeting = step.greeting or "busy or unavailable, by the callee's dial status"
            lines.append(f"  {n}. voicemail of {step.mailbox}, greeting: {greeting}  -- {step.why}")
        else:
            lines.append(f"  {n}. hang up  -- {step.why}")
    if explain:
        lines += ["", "Why:", *(f"  - {line}" for line in plan.explanation)]
    return "\n".join(lines)


def format_mail_plan(plan: MailPlan, *, explain: bool) -> str:
    r = plan.request
    lines = [f"Mail to {r.recipient}" + (f" from {r.sender}" if r.sender else "") +
             f" at {r.at:%a %Y-%m-%d %H:%M %Z}", "", "Actions:"]
    if not plan.actions:
        lines.append("  (none: delivered to INBOX as usual)")
    for n, a in enumerate(plan.actions, 1):
        if a.kind == "fileinto":
            lines.append(f"  {n}. file into folder {a.folder}  -- {a.why}")
        elif a.kind == "notify":
            lines.append(f"  {n}. notify {a.user} by {a.medium} ({a.address})  -- {a.why}")
        else:
            lines.append(f"  {n}. auto-reply to {a.to}, subject {a.subject!r}, at most once "
                         f"every {a.days} day(s)  -- {a.why}")
    if explain:
        lines += ["", "Why:", *(f"  - {line}" for line in plan.explanation)]
    return "\n".join(lines)

