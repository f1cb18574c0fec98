"""The one reader of hook ``mailcall_voice_counts``: bounded wait, contract checked, one wording.

Why here, in the plugin host: the hook is answered by a plugin (the lamp,
mwi/running.py, or another) and read by several parts that do not depend on
one another (the voicemail notification, the phone menu's greeting); the host
is what both already use to call plugins, so the rules for reading this
hook's answer are written once beside them, as :mod:`.collect` does for list
hooks.

The rules: a plugin that raises, returns something not awaitable, fails
while counting, or resolves to anything but a
:class:`~mailcall.core.contracts.VoiceCounts` (or None) is logged, naming
the hook, the user and what the reader does instead, and the reader gives
None, as it does when nothing answers within `wait`. An answer that is
late is cancelled only when it is a coroutine made for this call; a future
the plugin shares with other readers (a recount under way) is left to
finish for them.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

from mailcall.core.contracts import VoiceCounts

log = logging.getLogger("mailcall.voice_counts")

HOOK = "mailcall_voice_counts"


async def read_voice_counts(runtime: Any, user: str, *, wait: float, purpose: str,
                            instead: str) -> VoiceCounts | None:
    """`user`'s counts from the hook, or None (no plugin counts them, the folder was
    unreadable lately, no answer within `wait` seconds, or a plugin broke the contract).

    `purpose` names who asks in the log ("the phone menu's greeting"); `instead` what
    it does without the counts ("it counts its own listing").
    """
    try:
        pending = runtime.pm.hook.mailcall_voice_counts(runtime=runtime, user=user)
    except Exception:
        log.exception("%s for %s (%s) failed; %s", HOOK, user, purpose, instead)
        return None
    if pending is None:
        return None
    if not inspect.isawaitable(pending):
        log.error("%s for %s (%s) returned %r, not an awaitable (core/hookspecs.py); %s",
                  HOOK, user, purpose, pending, instead)
        return None
    ours = inspect.iscoroutine(pending)
    task = asyncio.ensure_future(pending)
    try:
        done, _ = await asyncio.wait({task}, timeout=wait)
    except asyncio.CancelledError:  # the reader's own caller gave up (a hang-up)
        if ours:
            task.cancel()
        _quiet(task)
        raise
    if not done:
        log.info("%s for %s (%s) gave no answer within %.1f s; %s", HOOK, user, purpose,
                 wait, instead)
        if ours:
            task.cancel()
        _quiet(task)
        return None
    try:
        got = task.result()
    except (Exception, asyncio.CancelledError) as exc:
        log.warning("%s for %s (%s) failed while counting (%s: %s); %s", HOOK, user,
                    purpose, type(exc).__name__, exc, instead)
        return None
    if got is not None and not isinstance(got, VoiceCounts):
        log.error("%s for %s (%s) gave %r, not a VoiceCounts (core/contracts.py); %s",
                  HOOK, user, purpose, got, instead)
        return None
    return got


def _quiet(task: asyncio.Future[Any]) -> None:
    """Let `task` end on its own without asyncio logging its unretrieved error."""
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
