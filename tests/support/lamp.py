"""A plugin answering ``mailcall_voice_counts`` as the running lamp does (mwi/running.py),
with counts the test chooses: for the callers of the hook (notifications, the phone
menu). The lamp itself is tested on a real Dovecot and Asterisk in tests/mwi."""

from __future__ import annotations

import asyncio

from mailcall.core.contracts import VoiceCounts
from mailcall.core.hookspecs import hookimpl


class CountingLamp:
    def __init__(self, counts: VoiceCounts | None, delay: float = 0.0) -> None:
        self.counts = counts
        self.delay = delay
        self.asked: list[str] = []

    @hookimpl
    def mailcall_voice_counts(self, runtime, user):
        self.asked.append(user)

        async def settled():
            await asyncio.sleep(self.delay)
            return self.counts
        return settled()
