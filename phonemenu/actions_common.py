"""What the menu's actions share: a wait with "one moment please", a recording, a deposit.

Moved out of one module that mixed reply, forward and call back (actions_reply,
actions_forward, actions_call_back). No dead air: work that can be slow (the
relay, the message's audio) is awaited by :func:`waiting`, which says "one
moment please" as the menu's mailbox does (:mod:`.waiting`), and gives up at a bound.
A voice reply or a forward to a colleague is a
:class:`~mailcall.core.decisions.deposits.VoiceMessage` handed to the durable
spool (``runtime.deposit``, as the voicemail handler does); paths come from the
policy's user ids and Asterisk's uniqueid, never from what a caller or sender wrote.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailcall.agi import prompts
from mailcall.agi.folders import (
    SAMPLES_PER_MS,
    WAV_HEADER,
    file_size,
    recorded_ms,
    recordings_folder,
    shared_folder,
)
from mailcall.agi.session import AgiHangup
from mailcall.core.decisions.deposits import VoiceMessage

from .waiting import over_the_wait

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

MAX_REPLY_MS = 120_000
SILENCE_S = 3


async def waiting(call: MenuCall, task: asyncio.Future[Any], bound: float) -> bool:
    """Whether `task` finished within `bound` seconds, "one moment please" said over the
    wait (:func:`.waiting.over_the_wait`, the menu's one rule). A key during the prompt
    only cuts it: the action goes on and its outcome is said (the key is not another
    command). After a hang-up the work still gets its time, in silence. The task is
    left running; the caller decides whether to cancel it.
    """
    finished, _key = await over_the_wait(call.saying, task, bound=bound,
                                         speak=lambda: not call.session.hungup)
    return finished


def quiet_task(task: asyncio.Future[Any]) -> None:
    """Retrieve a finished or cancelled task's exception so asyncio does not log it."""
    if task.done() and not task.cancelled():
        task.exception()


# ------------------------------------------------------------------ recording


async def record(call: MenuCall, what: str) -> tuple[Path | None, int]:
    """Record after the beep into the spool's rec/ (``#`` ends it); (WAV or None, ms)."""
    session = call.session
    loop = asyncio.get_running_loop()
    rec = await loop.run_in_executor(
        None, shared_folder, recordings_folder(call.runtime.setting("spool_dir")))
    base = rec / f"menu-{call.scratch.next_name(what)}"
    wav = base.with_name(base.name + ".wav")
    # "#" skips the instructions to the beep, as in voicemail; no other key is listened for.
    await session.stream_file(prompts.LEAVE_MESSAGE, "#")
    result = await session.record_file(str(base), "wav", "#", MAX_REPLY_MS, beep=True,
                                       silence_s=SILENCE_S)
    call.saying.quiet_now()  # the line's silence starts at the recording's end
    size = await loop.run_in_executor(None, file_size, wav)
    if result.outcome == "hangup" or session.hungup:
        await loop.run_in_executor(None, unlink_file, wav)
        raise AgiHangup("caller hung up while recording")
    if size <= WAV_HEADER:
        await loop.run_in_executor(None, unlink_file, wav)
        return None, 0
    return wav, max(result.endpos // SAMPLES_PER_MS, recorded_ms(size))


def unlink_file(path: Path) -> None:
    path.unlink(missing_ok=True)


async def deposit(call: MenuCall, mailbox: str, recording: Path, ms: int, *, what: str,
                  caller_number: str, caller_name: str) -> bool:
    message = VoiceMessage(
        call_id=call.scratch.next_name(what), mailbox=mailbox, caller_number=caller_number,
        caller_name=caller_name, at=call.runtime.now(), reason="direct",
        recording=str(recording), duration_ms=ms, ended_by="dtmf")
    try:
        spool_id = await call.runtime.deposit(message)
    except Exception as exc:
        log.error("phone menu: %s from %s to %s could not be deposited: %s: %s. The recording "
                  "is kept at %s", what, call.user.id, mailbox, type(exc).__name__, exc,
                  recording)
        return False
    log.info("phone menu: %s from %s to %s deposited (%s)", what, call.user.id, mailbox,
             spool_id)
    return True


def own_number(user: Any) -> str:
    """How a colleague's voicemail shows the user: their first extension, else number."""
    return (user.extensions or user.numbers or ("",))[0]


def is_deposit(message: MessageSummary) -> bool:
    """A voice or fax deposit (sealed), wherever the user filed it: its From is mailcall's
    own sender, the person is the caller number the deposit wrote."""
    return message.kind in ("voice", "fax")


__all__ = ["deposit", "is_deposit", "own_number", "quiet_task", "record", "unlink_file",
           "waiting"]
