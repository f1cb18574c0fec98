"""The one reader of hook ``mailcall_voice_counts``: bounded wait, contract checked, one wording.

Why here, in the plugin host: the hook is answered by a plugin (the lamp,
mwi/running.py, or another) and read by several parts that do not depend on
one another (the voicemail notification, the phone menu's greeting); the host
is what both already use to call plugins, so the rules for reading this
hook's answer are written once beside them, as :mod:`.collect` does for list
hooks.

The rules: the plugins are asked one by one in call order and the first
awaitable answer is taken; a plugin that raises or returns something not
awaitable is logged by name (with the fix) and the next one is asked. An
answer that fails while counting, or resolves to anything but a
:class:`~mailcall.core.contracts.VoiceCounts` (or None), is logged, naming
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
from mailcall.core.host.plugin_manager import each_plugin
from mailcall.core.text import display_text

log = logging.getLogger("mailcall.voice_counts")

HOOK = "mailcall_voice_counts"


async def read_voice_counts(runtime: Any, user: str, *, wait: float, purpose: str,
                            instead: str) -> VoiceCounts | None:
    """`user`'s counts from the hook, or None (no plugin counts them, the folder was
    unreadable lately, no answer within `wait` seconds, or a plugin broke the contract).

    `purpose` names who asks in the log ("the phone menu's greeting"); `instead` what
    it does without the counts ("it counts its own listing").
    """
    pending = _first_answer(runtime, user, purpose, instead)
    if pending is None:
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


def _first_answer(runtime: Any, user: str, purpose: str, instead: str) -> Any:
    """The first awaitable a plugin returns, in call order, or None.

    Each plugin is asked through its own subset (``each_plugin``, as ``collected`` and
    ``announce`` do), not by one ``firstresult`` call: there pluggy stops at the first
    exception, so one broken plugin would hide the lamp's answer. A plugin that raises
    or returns something not awaitable is logged by name, with the fix, and the next
    plugin is asked.
    """
    callers = list(reversed(each_plugin(runtime.pm, HOOK)))
    for i, (plugin, call) in enumerate(callers):
        then = "the next plugin is asked" if i + 1 < len(callers) else instead
        try:
            pending = call(runtime=runtime, user=user)
        except Exception:
            log.exception("%s for %s (%s): plugin %r failed; %s. Fix that plugin or disable "
                          "it (MAILCALL_DISABLE_PLUGINS=%s)", HOOK, user, purpose, plugin,
                          then, plugin)
            continue
        if pending is None:
            continue
        if inspect.isawaitable(pending):
            return pending
        log.error("%s for %s (%s): plugin %r returned %s, not an awaitable "
                  "(core/hookspecs.py); %s. Fix that plugin or disable it "
                  "(MAILCALL_DISABLE_PLUGINS=%s)", HOOK, user, purpose, plugin,
                  display_text(repr(pending), 80), then, plugin)
    return None


def _quiet(task: asyncio.Future[Any]) -> None:
    """Let `task` end on its own without asyncio logging its unretrieved error."""
    task.add_done_callback(lambda t: None if t.cancelled() else t.exception())
