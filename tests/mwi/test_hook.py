"""The deposit plugin's delivered hook recounts the user's lamp (real Dovecot, real deposit)."""

from __future__ import annotations

import asyncio
import time

from mailcall.mwi.counts import Counts
from mailcall.mwi.service import MwiService
from mailcall.plugins.deposit import notify_delivered


async def test_hook_mailcall_deposit_delivered(mail, tmp_path):
    # AMI is down on purpose (nothing on port 1): counting must not wait for Asterisk.
    service = MwiService(mail.runtime, mail.settings(trigger_socket=None))
    await service.start()
    try:
        await service.reconciled()
        assert service.counts("alice") is None  # no folder yet: unknown, not 0/0
        loop = asyncio.get_running_loop()
        deposit, plan, mid = await loop.run_in_executor(None, mail.deposit, "alice", "call-1")
        notify_delivered(mail.runtime, deposit, plan, mid)  # calls the hook, as the worker does
        deadline = time.monotonic() + 5
        while service.counts("alice") != Counts(1, 0):
            assert time.monotonic() < deadline, service.counts("alice")
            await asyncio.sleep(0.02)
        assert service.ledger.due == 1  # kept for Asterisk, published when AMI comes up
    finally:
        await service.stop(1.0)
    # Without a running lamp (no mwi.toml) the hook does nothing and raises nothing.
    del mail.runtime.mwi
    notify_delivered(mail.runtime, deposit, plan, mid)
