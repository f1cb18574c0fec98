"""The mailbox options (0): record the greetings the profile allows.

A greeting is recorded under a temporary name and renamed over the old one,
as the greeting menu does (mailcall.agi.handlers.greeting), so a hang-up or an
empty recording leaves the old greeting in place. Changing the PIN (4) and
setting an absence (5) are not built yet (docs/phone-menu.md, "Not built yet").
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from mailcall.agi import prompts
from mailcall.agi.handlers.greeting import _commit, _discard, _prepare
from mailcall.agi.handlers.voicemail import greeting_path

from .actions import SILENCE_S

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

MAX_GREETING_MS = 60_000


async def record_greeting(call: MenuCall, kind: str) -> None:
    user = call.user
    if kind not in user.features.greetings:
        await call.saying.stream(prompts.INVALID_CHOICE)
        return
    session = call.session
    loop = asyncio.get_running_loop()
    final = greeting_path(call.runtime, user.id, kind)
    tmp = await loop.run_in_executor(None, _prepare, final, session.env.uniqueid)
    try:
        rec = await session.record_file(str(tmp), "wav", "#", MAX_GREETING_MS, beep=True,
                                        silence_s=SILENCE_S)
        saved = rec.outcome in ("dtmf", "timeout") and await loop.run_in_executor(
            None, _commit, tmp, final)
    except BaseException:
        _discard(tmp)
        raise
    if not saved:
        await loop.run_in_executor(None, _discard, tmp)
        if not session.hungup:
            await call.saying.phrase("not_sent")
        return
    log.info("phone menu: greeting %s of %s replaced", kind, user.id)
    await call.saying.stream(prompts.SAVED)


__all__ = ["record_greeting"]
