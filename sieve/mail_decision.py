"""The bridge's answer to one Sieve request, decided by the policy; no socket here.

Verbs (first argument): ``notify [recipient [sender]]`` decides with
``plan_mail`` and returns the notice to send after answering; ``deposit
[recipient]`` is true only for a voicemail or fax mailcall itself deposited,
proven by its ``Mailcall-Deposit`` token (:mod:`mailcall.deposit.seal`:
authentic, and made within the duplicate window, so a replayed copy is
refused), and logs why anything else is not one; ``folder`` answers the folder
name of a proven deposit as output (for ``execute :output`` in custom scripts;
the generated script files statically and does not need it); ``ping`` is true.
Anything else is false: the script goes on and the mail is delivered.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from mailcall.core.decisions.mailing import plan_mail
from mailcall.core.decisions.plans import FileInto, MailPlan, MailRequest, Notify
from mailcall.core.host.plugin_manager import announce_decision
from mailcall.core.host.runtime import Runtime
from mailcall.core.text import display_text
from mailcall.deposit.seal import SEAL_HEADER, DepositKeyError, delivery_problem, deposit_key
from mailcall.notifications import MailNotice
from mailcall.userstore.overlay import decision_policy

from .mail_facts import BridgeRequest

log = logging.getLogger(__name__)

PHONE_CONTEXTS = ("voice-message", "fax-message")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to answer Dovecot (``+``/``-`` and the output), and what to notify afterwards."""

    ok: bool
    output: bytes = b""
    notice: MailNotice | None = None


FALSE = Verdict(False)
TRUE = Verdict(True)


class MailDecider:
    """Decides each request with the runtime's policy of the moment, refined by the users'
    own settings (user store: notification media and hours, absences) when it runs."""

    def __init__(self, runtime: Runtime, spool_dir: str | os.PathLike[str]) -> None:
        self.runtime = runtime
        self.spool_dir = Path(spool_dir)
        """Where the deposit key is (the key the deposit builder seals messages with)."""

    def decide(self, request: BridgeRequest) -> Verdict:
        verb = request.verb
        if verb == "ping":
            return TRUE
        if verb == "deposit":
            return Verdict(self.proven(request))
        if verb == "folder":
            return self._folder(request)
        if verb != "notify":
            log.warning("unknown verb %r from Sieve: answered false", display_text(verb, 40))
            return FALSE
        plan = self.plan(request)
        notifications = tuple(a for a in plan.actions if isinstance(a, Notify))
        if not notifications:
            return TRUE
        f = request.fields
        return Verdict(True, notice=MailNotice(
            notifications=notifications, recipient=plan.request.recipient,
            sender=plan.request.sender, message_id=f.get("message-id", ""),
            subject=f.get("subject", ""), from_header=f.get("from", ""),
            auto_submitted=f.get("auto-submitted", ""), list_id=f.get("list-id", ""),
            precedence=f.get("precedence", ""),
        ))

    def _folder(self, request: BridgeRequest) -> Verdict:
        # A custom script may ask for every mail: only one with a token is worth a check
        # (and a log line when it fails).
        if not request.fields.get("token") or not self.proven(request):
            return FALSE
        plan = self.plan(request, context=request.fields.get("context", ""))
        folders = [a.folder for a in plan.actions if isinstance(a, FileInto)]
        if not folders:
            return FALSE
        return Verdict(True, folders[0].encode("utf-8"))

    def proven(self, request: BridgeRequest) -> bool:
        """True for a voicemail or fax mailcall deposited: its token is the one mailcall's key
        gives for its Message-ID, context and envelope recipient. Anything else is logged:
        Dovecot's script sets it aside (Quarantine)."""
        f = request.fields
        recipient = request.recipient
        message_id, context = f.get("message-id", ""), f.get("context", "").lower()
        token = f.get("token", "")
        if context not in PHONE_CONTEXTS:
            problem = "its Message-Context is not voice-message or fax-message"
        elif not token:
            problem = f"it carries no {SEAL_HEADER} token"
        else:
            try:
                key = deposit_key(self.spool_dir)
            except DepositKeyError as exc:
                log.error("cannot check a deposit for %s: %s", display_text(recipient, 200), exc)
                return False
            # Authentic *and* fresh: a replayed copy of a genuine deposit is older than the
            # window Dovecot's duplicate test remembers its Message-ID for. Real time, as
            # the builder's and Dovecot's (not the policy clock tests move).
            problem = delivery_problem(key, token, message_id, recipient, context,
                                       key_name=f"{self.spool_dir}/deposit.key")
            if problem is None:
                return True
        log.warning("mail to %s from <%s>, Message-ID %s, claims to be a mailcall deposit but %s: "
                    "not filed as voicemail or fax (the generated script puts it into "
                    "Quarantine)", display_text(recipient, 200), display_text(request.sender, 200),
                    display_text(message_id, 200) or "(none)", problem)
        return False

    def plan(self, request: BridgeRequest, context: str = "") -> MailPlan:
        """The policy's decision for this mail. `context` is given only for a proven deposit:
        a Message-Context header alone never files anything."""
        f = request.fields
        mail = MailRequest(
            recipient=request.recipient, sender=request.sender, at=self.runtime.now(),
            context=context, auto_submitted=f.get("auto-submitted", ""),
            list_id=f.get("list-id", ""), precedence=f.get("precedence", ""),
            subject=f.get("subject", ""),
        )
        plan = plan_mail(decision_policy(self.runtime), mail)
        announce_decision(self.runtime.pm, "mail", mail, plan)
        if log.isEnabledFor(logging.DEBUG):
            log.debug("mail to %s: %s", display_text(mail.recipient, 200),
                      "; ".join(plan.explanation))
        return plan
