"""Publishing lamps to Asterisk: AMI ``MWIUpdate`` from what the ledger says is due.

``MWIUpdate`` (res_mwi_external_ami) sets a mailbox's counts in Asterisk's
external MWI store; res_pjsip_mwi then sends the NOTIFY message-summary
(RFC 3842) to every endpoint or AOR with ``mailboxes=<that id>``.

Only the ledger's latest counts are ever sent, never a queue of old ones.
While AMI is down nothing is sent and nothing piles up; the AMI client's
connect listener makes the service republish every known lamp.
Asterisk parses the counts with ``%u``: a negative number would become four
billion, which is one more reason :class:`mailcall.mwi.counts.Counts` refuses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mailcall.ami.client import AmiClient, AmiError, AmiNotConnected
from mailcall.core.sansio import LocalProtocolError

from .ledger import Ledger

log = logging.getLogger("mailcall.mwi")

RETRY_MIN = 1.0
RETRY_MAX = 60.0
"""A refused MWIUpdate is sent again after 1 s, then 2, 4 ... at most a minute apart."""


class Publisher:
    def __init__(self, ami: AmiClient, ledger: Ledger, *, concurrency: int = 16) -> None:
        self.ami = ami
        self.ledger = ledger
        self.concurrency = concurrency
        self.sent = 0
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._refused: str | None = None
        self._retry = RETRY_MIN
        self._unsendable: set[str] = set()

    async def start(self) -> None:
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="mwi publisher")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._inflight) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None

    def wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def settled(self, timeout: float) -> bool:
        """Wait until every due lamp is sent (True), or AMI is down or `timeout` passed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.ledger.due or self._inflight:
            if not self.ami.connected or loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wake is not None
        while True:
            self._wake.clear()
            if not self.ami.connected:
                await self._wake.wait()  # woken by the AMI connect listener
                continue
            # Lamps people see go first; deletes of lamps nobody is shown under after.
            while len(self._inflight) < self.concurrency:
                item = self.ledger.take(loop.time())
                if item is None:
                    break
                task = asyncio.create_task(self._send(*item))
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            while len(self._inflight) < self.concurrency:
                gone = self.ledger.take_retired()
                if gone is None:
                    break
                task = asyncio.create_task(self._delete(gone))
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            if len(self._inflight) >= self.concurrency:
                await self._wake.wait()
                continue
            at = self.ledger.next_time()
            timeout = None if at is None else max(0.0, at - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self.wake()

    async def _delete(self, mailbox: str) -> None:
        """Switch off a lamp nobody is shown under any more (a user left, or their
        mailbox id changed)."""
        try:
            reply = await self.ami.action("MWIDelete", {"Mailbox": mailbox})
        except LocalProtocolError:
            return  # never published either (logged when its update was refused)
        except AmiNotConnected:
            self.ledger.delete_again(mailbox)  # on the next connection
            return
        except AmiError as exc:
            # Asterisk is up but did not answer: one try is all a lamp nobody is shown
            # under gets (the next reconnect's republish does not resend it either).
            log.warning("mwi: %s is no longer watched, but switching its lamp off failed "
                        "(%s); clear it with: asterisk -rx 'mwi delete mailbox %s' if it "
                        "stays lit", mailbox, exc, mailbox)
            return
        if reply.ok:
            log.info("mwi: %s is no longer watched; its lamp is switched off", mailbox)
        else:
            log.debug("mwi: MWIDelete %s: %s", mailbox, reply.text)

    async def _send(self, mailbox: str, counts) -> None:
        try:
            reply = await self.ami.action("MWIUpdate", {
                "Mailbox": mailbox, "NewMessages": counts.new, "OldMessages": counts.old})
        except LocalProtocolError as exc:
            # The mailbox id cannot be written on AMI (mwi.toml's [lamp] mailbox with this
            # user's id or extension): sending again cannot help; said once per mailbox.
            if mailbox not in self._unsendable:
                self._unsendable.add(mailbox)
                log.error("mwi: cannot send the lamp of %r to Asterisk: %s; check [lamp] "
                          "mailbox in mwi.toml and this user's id and extension", mailbox, exc)
            return
        except AmiError as exc:
            self.ledger.unsent(mailbox)
            log.debug("mwi: %s not published yet (%s); it will be on reconnect", mailbox, exc)
            return
        if reply.ok:
            self.ledger.sent(mailbox, counts)
            self.sent += 1
            self._retry = RETRY_MIN
            if self._refused is not None:
                log.info("mwi: Asterisk accepts MWIUpdate again")
                self._refused = None
            return
        # Sent again later with the latest counts, backing off while Asterisk refuses.
        self.ledger.retry_at(mailbox, asyncio.get_running_loop().time() + self._retry)
        self._retry = min(self._retry * 2, RETRY_MAX)
        if reply.text != self._refused:
            self._refused = reply.text
            hint = (" load res_mwi_external_ami (modules.conf: load => "
                    "res_mwi_external_ami.so) and give the AMI user write = call"
                    if "unknown command" in reply.text.lower() or "permission" in
                    reply.text.lower() else "")
            log.error("mwi: Asterisk refused MWIUpdate for %s: %s.%s It is sent again, "
                      "up to a minute apart, until Asterisk accepts it.", mailbox,
                      reply.text, hint)
