"""What ``mailcall serve`` answers the delivery process, and what it does with each delivery.

The child asks for the plan of each deposit (the policy of the moment, which
only serve holds) and says when one is delivered; serve then hands the
deposit's notification to the notifier. A delivery whose notification never
reached the notifier's queue (mailcall stopped in between) is handed over
again when the spool is recovered. The supervision of the child itself is
:class:`~mailcall.deposit.delivery_process.DeliveryProcess`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from mailcall.core.decisions.deposits import Deposit
from mailcall.core.decisions.plans import DepositPlan

from . import pipe_protocol as pipe
from .delivery import Target
from .spool import Spool, spool_id
from .spool_depositor import SpoolDepositor
from .spool_record import SpoolRecord
from .voice_message import Origin

log = logging.getLogger("mailcall.deposit.delivery_process")


class DeliveryAnswers:
    """The answering half of :class:`~mailcall.deposit.delivery_process.DeliveryProcess`.

    The attributes below are the process's (tests and the plugin may set them
    after it is built).
    """

    spool: Spool
    planner: Callable[[Deposit], DepositPlan]
    origin: Callable[[], Origin]
    target: Callable[[], Target]
    delivered: Callable[[Deposit, DepositPlan, str], object] | None
    depositor: SpoolDepositor | None
    _send: Callable[[pipe.Message], bool]

    async def _recover(self) -> None:
        """Crash leftovers, cleaned while no child runs and never during an accept."""
        if self.depositor is not None:
            await self.depositor.exclusive(self.spool.recover)
        else:
            await asyncio.to_thread(self.spool.recover)
        if self.delivered is not None:
            for record in await asyncio.to_thread(self.spool.notify_pending):
                self._notify_again(record)

    def _notify_again(self, record: SpoolRecord) -> None:
        """A deposit delivered while its notification never reached the notifier's queue
        (mailcall stopped in between): hand it over now; the notifier drops a duplicate."""
        try:
            plan = self.planner(record.deposit)
            log.info("deposit %s was delivered before mailcall stopped, its notification "
                     "not yet queued: queuing it now", record.id)
            accepted = self.delivered(record.deposit, plan, record.message_id or "") \
                if plan.notify else None
        except Exception:
            log.exception("deposit %s: delivered, but notifying the mobile failed; tried "
                          "again at next start", record.id)
            return
        self.spool.notified_when(accepted, record.id)

    def _give_plan(self, request: pipe.PlanRequest) -> None:
        try:
            plan = self.planner(request.deposit)
        except Exception as exc:  # the policy has no plan for it: parked
            self._send(pipe.PlanRefused(request.number, str(exc)))
            return
        try:
            answer = pipe.PlanGiven(request.number, plan, self.origin(), self.target())
            if not self._send(answer):
                raise OSError("cannot send the plan to the delivery process")
        except Exception as exc:  # retried later, never parked for it
            log.exception("cannot give the delivery process the plan for %s",
                          request.deposit.mailbox)
            self._send(pipe.PlanRetryLater(request.number, repr(exc)))

    def _passed_on(self, message: pipe.DepositDelivered) -> None:
        """The child delivered a deposit: tell whoever wants to know (the mobile)."""
        if self.delivered is not None:
            try:
                accepted = self.delivered(message.deposit, message.plan, message.message_id)
            except Exception:
                log.exception("deposit for %s delivered, but notifying the mobile failed",
                              message.deposit.mailbox)
            else:
                if message.plan.notify:  # else no promise was written
                    self.spool.notified_when(accepted, spool_id(message.deposit))
