"""``agi://host/route[?to=NUMBER]``: carry out the policy's call plan step by step.

The plan comes from :func:`mailcall.core.decisions.routing.plan_call`, the same function
``mailcall route --explain`` prints, so what the administrator reads is what
the call does. Each ``Ring`` becomes ``EXEC Dial "<targets>,<seconds>"``
followed by ``GET VARIABLE DIALSTATUS`` (the ``dial-*`` traces). Dial strings
come only from the policy's ``[telephony]`` templates filled with numbers from
the policy that match ``+?[0-9]+``; the caller's data never reaches them.

When mailcall stops, the dialplan continues with these variables:

``MAILCALL_STATUS``  ANSWERED, VOICEMAIL, MISSED_CALL, HANGUP (the plan said
                     so), CALLER_HUNGUP, UNREACHABLE (rings failed, no
                     voicemail), NO_ROUTE (nobody has that number),
                     DEPOSIT_FAILED, NO_MAILBOX, NO_VOICEMAIL, ERROR
``MAILCALL_RESULT``  the last DIALSTATUS (ANSWER, BUSY, NOANSWER, ...)
``MAILCALL_STEP``    1-based index of the last plan step carried out
``MAILCALL_VOICEMAIL`` / ``MAILCALL_GREETING``  mailbox and greeting used
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mailcall.core.decisions.plans import CallRequest, Hangup, Ring, Voicemail
from mailcall.core.decisions.routing import plan_call
from mailcall.core.host.plugin_manager import announce_decision
from mailcall.core.policy.numbers import find_owner, language_of
from mailcall.core.policy.telephony import dial_argument
from mailcall.userstore.overlay import decision_policy

from ..driver import inline
from ..replies import DIAL_CONDITIONS
from ..safety import dialled
from ..session import AgiSession
from .voicemail import reason_for, take_message

log = logging.getLogger("mailcall.agi.route")

MOVE_ON = frozenset(DIAL_CONDITIONS) | {"UNKNOWN"}
"""The DIALSTATUS values after which the plan goes on (UNKNOWN: Dial set none)."""
"""Outcomes after which the plan goes on. INVALIDARGS is a dial string Dial refused
(a ``[telephony]`` template that does not fit this Asterisk): the caller still gets
the backup and the voicemail, and the administrator a warning."""


def dial_options(policy: Any, step: Ring) -> str | None:
    """``PJSIP/201&PJSIP/202,20`` for a Ring step, or None when nothing can be dialled.

    Built by :func:`mailcall.core.policy.telephony.dial_argument` (what ``route --explain``
    prints); an endpoint that is not a plain number is skipped and logged.
    """
    dial = dial_argument(policy, step.targets, step.seconds)
    for refusal in dial.refused:
        log.warning("%s (ringing %s)", refusal, step.who)
    return dial.text


def pick_greeting(policy: Any, step: Voicemail, own_status: str | None) -> str:
    if step.greeting is not None:
        return step.greeting
    user = policy.users.get(step.mailbox)
    if own_status == "BUSY" and user is not None and "busy" in user.features.greetings:
        return "busy"
    return "unavailable"


def make_handler(rules: Sequence[Any] | None) -> Callable[[AgiSession, Any], Awaitable[str]]:
    """The ``route`` handler bound to the routing rules the plugins offer.

    The rules are collected once, when the AGI server starts, exactly as
    ``mailcall route --explain`` collects them, so both follow the same plan.
    None means the core's default rules.
    """
    if rules is not None and not rules:
        log.warning("no plugin offers call routing rules (is the 'rules' plugin blocked?): "
                    "every routed call will end with MAILCALL_STATUS=HANGUP")

    @inline
    def route(session: AgiSession, runtime: Any) -> Awaitable[str]:
        return handler(session, runtime, rules=rules)  # no extra coroutine frame per step

    return route


async def handler(session: AgiSession, runtime: Any, *, rules: Sequence[Any] | None = None) -> str:
    env = session.env
    # The policy refined by the users' own settings (user store), as of this call.
    policy = decision_policy(runtime)
    callee = dialled(env.arg(1)) or dialled(env.param("to")) or dialled(env.extension)
    # First, before anything acts on the call: the callee's language for Asterisk's prompts.
    await session.set_language(language_of(policy, find_owner(policy, callee)))
    if callee is None:
        await session.set_status("NO_ROUTE", result="", step="0")
        return "NO_ROUTE"
    request = CallRequest(callee=callee, caller=dialled(env.callerid) or "", at=runtime.now(),
                          state="unknown")
    plan = plan_call(policy, request, rules)
    announce_decision(runtime.pm, "call", request, plan)
    if plan.callee is None:
        await session.set_status("NO_ROUTE", result="", step="0")
        return "NO_ROUTE"
    own_status: str | None = None
    last_status = ""
    for index, step in enumerate(plan.steps, 1):
        if isinstance(step, Ring):
            if (step.after and own_status is not None
                    and DIAL_CONDITIONS.get(own_status) not in step.after):
                continue
            options = dial_options(policy, step)
            if options is None:
                continue
            status = await session.dial(options)
            last_status = status
            if status == "INVALIDARGS":
                log.warning("Dial refused %r as invalid (DIALSTATUS=INVALIDARGS) while ringing "
                            "%s: check the [telephony] dial templates in the policy; "
                            "moving on with the plan", options, step.who)
            if step.own:
                own_status = status
            if status == "ANSWER":
                await session.set_status("ANSWERED", result=status, step=str(index))
                return "ANSWERED"
            if status not in MOVE_ON:  # CANCEL: the caller left; DONTCALL, TORTURE (privacy)
                await session.set_status("CALLER_HUNGUP", result=status, step=str(index))
                return "CALLER_HUNGUP"
        elif isinstance(step, Voicemail):
            greeting = pick_greeting(policy, step, own_status)
            reason = ("absent" if greeting == "absence"
                      else reason_for(own_status or last_status or None))
            return await take_message(session, runtime, mailbox=step.mailbox,
                                      greeting=greeting, reason=reason,
                                      extra={"result": last_status, "step": str(index)},
                                      policy=policy)
        elif isinstance(step, Hangup):
            await session.set_status("HANGUP", result=last_status, step=str(index))
            return "HANGUP"
    await session.set_status("UNREACHABLE", result=last_status, step=str(len(plan.steps)))
    return "UNREACHABLE"
