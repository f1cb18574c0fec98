"""Built-in plugin: voicemail and fax deposits go through the durable spool into the mailbox.

Wires :mod:`mailcall.deposit` to the hooks: the spool is the ``Depositor`` the
FastAGI handlers call, its worker is a ``mailcall serve`` service (in a child
process of its own, :mod:`mailcall.deposit.delivery_process`), the audio
encoders and the fax converters (PDF, TIFF) are offered through their hooks like
any plugin's, and ``mailcall spool`` is a sub-command.
Everything policy-dependent is read from ``runtime.policy`` at each use, so a
reload applies to deposits still waiting in the spool.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

from mailcall.core.contracts import AudioEncoder, FaxConverter
from mailcall.core.decisions.deposit_plan import plan_deposit
from mailcall.core.decisions.deposits import Deposit
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.collect import collected_by_name
from mailcall.core.host.plugin_manager import announce, announce_decision
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.model import Policy
from mailcall.deposit import commands
from mailcall.deposit.audio import WavEncoder, sndfile_mp3, sndfile_opus
from mailcall.deposit.delivery import Target, parse_target
from mailcall.deposit.delivery_process import DeliveryProcess
from mailcall.deposit.fax_converters import BUILTIN as BUILTIN_FAX_CONVERTERS
from mailcall.deposit.fax_converters import makers
from mailcall.deposit.opus_encoder import LibopusEncoder
from mailcall.deposit.opus_encoder import available as libopus_available
from mailcall.deposit.spool import Spool, kind_of
from mailcall.deposit.spool_depositor import SpoolDepositor
from mailcall.deposit.voice_message import Origin
from mailcall.notifications import MailNotice
from mailcall.userstore.overlay import decision_policy

log = logging.getLogger(__name__)


def origin_for(policy: Policy) -> Origin:
    org = policy.organisation
    return Origin(sender=policy.sender, domain=org.domain, timezone=org.timezone,
                  sender_name=org.name)


def target_for(policy: Policy) -> Target:
    return parse_target(policy.delivery.method, policy.delivery.address)


def plan_for(policy: Policy, deposit: Deposit) -> DepositPlan:
    return plan_deposit(policy, mailbox=deposit.mailbox, kind=kind_of(deposit), at=deposit.at)


_NOTICE = {"fr": {"voice": "Message vocal", "fax": "Fax"},
           "en": {"voice": "Voicemail", "fax": "Fax"}}


def notify_delivered(runtime: Runtime, deposit: Deposit, plan: DepositPlan,
                     message_id: str) -> asyncio.Future[bool] | None:
    """Tell the mobile of a delivered voicemail or fax, through the shared notifier.

    The notifier stores the notice in its durable queue before it counts as accepted
    (what it says if it cannot is in its own ERROR line); caller text is cleaned
    where it is shown, by the notification's wording. Returns the notifier's future (True
    once the notice is on disk), which the delivery process waits for before it forgets
    the promise (``notify_pending`` in the delivered spool record).
    """
    # The lamp, for one; a plugin that raises is logged and never costs the notification.
    announce(runtime.pm, "mailcall_deposit_delivered", "the deposit stays delivered and the "
             "mobile is still told", runtime=runtime, deposit=deposit, plan=plan,
             message_id=message_id)
    if not plan.notify:
        return None
    if runtime.notifier is None:
        log.warning("deposit for %s delivered; no notification channel plugin is loaded to "
                    "tell the mobile", plan.mailbox)
        return None
    caller = " ".join(p for p in (deposit.caller_name, deposit.caller_number)
                      if p and p != "unknown") or "?"
    words = _NOTICE.get(plan.language, _NOTICE["en"])
    return runtime.notifier.submit(MailNotice(
        notifications=plan.notify, recipient=plan.recipient,
        sender=origin_for(runtime.policy).sender, message_id=message_id,
        subject=words[plan.kind], from_header=caller, origin="deposit", kind=plan.kind))


def _planned(runtime: Runtime, deposit: Deposit) -> DepositPlan:
    plan = plan_for(decision_policy(runtime), deposit)  # the user store's choices too
    announce_decision(runtime.pm, "deposit", deposit, plan)
    return plan


def encoders_from(pm: Any) -> dict[str, Any]:
    """What makes each attachment: audio encoders by format, fax converters by ``fax:FORMAT``
    (:func:`mailcall.deposit.fax_converters.maker_key`). For a format offered twice, the
    first plugin pluggy calls wins (plugins registered later are called first, so a
    third-party encoder overrides ours; :func:`~mailcall.core.host.collect.collected_by_name`
    logs it). An object that breaks its contract stops ``serve`` naming the plugin
    (:class:`~mailcall.core.host.collect.ContractBroken`)."""
    chosen: dict[str, Any] = dict(collected_by_name(
        pm, "mailcall_audio_encoders", AudioEncoder, name="format", what="audio format",
        expected="an AudioEncoder (format, mime_type, extension, encode)"))
    chosen.update(makers(collected_by_name(
        pm, "mailcall_fax_converters", FaxConverter, name="format", what="fax format",
        expected="a FaxConverter (format, mime_type, extension, convert)")))
    return chosen


@hookimpl(trylast=True)  # the default: another plugin's depositor replaces it
def mailcall_depositor(runtime: Runtime) -> SpoolDepositor:
    return SpoolDepositor(Spool(runtime.setting("spool_dir")))


@hookimpl
def mailcall_services(runtime: Runtime) -> list[Any]:
    depositor = runtime.depositor
    if isinstance(depositor, SpoolDepositor):
        spool = depositor.spool
    else:  # another plugin takes new deposits; still deliver what our spool holds
        spool = Spool(runtime.setting("spool_dir"))
    # The worker runs in a child process at a lower priority: see delivery_process.py.
    worker = DeliveryProcess(
        spool,
        planner=lambda deposit: _planned(runtime, deposit),
        origin=lambda: origin_for(runtime.policy),
        target=lambda: target_for(runtime.policy),
        encoders=encoders_from(runtime.pm),
        delivered=lambda deposit, plan, mid: notify_delivered(runtime, deposit, plan, mid),
        depositor=depositor if isinstance(depositor, SpoolDepositor) else None,
    )
    if isinstance(depositor, SpoolDepositor):
        depositor.subscribe(worker.wake)
    return [worker]


@hookimpl
def mailcall_audio_encoders() -> list[AudioEncoder]:
    if libopus_available():
        opus: Any = LibopusEncoder()
    else:
        log.warning("libopus/libogg not found: Opus voicemail uses libsndfile's slower encoder")
        opus = sndfile_opus()
    return [WavEncoder(), opus, sndfile_mp3()]


@hookimpl
def mailcall_fax_converters() -> list[FaxConverter]:
    return list(BUILTIN_FAX_CONVERTERS)


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    commands.register(subparsers)


@hookimpl
def mailcall_policy_checks(policy: Policy) -> list[str]:
    try:
        target_for(policy)
    except ValueError as exc:
        return [str(exc)]  # already "delivery.<key> ...: what is wrong"
    return []
