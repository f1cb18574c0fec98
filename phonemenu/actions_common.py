"""What the menu's actions share: a wait with "one moment please", a recording, a deposit.

Moved out of one module that mixed reply, forward and call back (actions_reply,
actions_forward, actions_call_back). No dead air: work that can be slow (the
relay, the message's audio) is awaited by :func:`waiting`, which says "one
moment please" within a second and again every two, and gives up at a bound.
A voice reply or a forward to a colleague is a
:class:`~mailcall.core.decisions.deposits.VoiceMessage` handed to the durable
spool (``runtime.deposit``, as the voicemail handler does); paths come from the
policy's user ids and Asterisk's uniqueid, never from what a caller or sender wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mailcall.agi import prompts
from mailcall.agi.folders import SAMPLES_PER_MS, WAV_HEADER, shared_folder
from mailcall.agi.session import AgiHangup
from mailcall.core.decisions.deposits import VoiceMessage

from .errors import KeyPressed

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

MAX_REPLY_MS = 120_000
SILENCE_S = 3
FIRST_WAIT_S = 1.0
"""Work still running after this gets "one moment please" said (as the menu's mailbox)."""
REMIND_S = 2.0
"""Then "one moment please" again after each such wait: no dead air of 3 s or more."""


async def waiting(call: MenuCall, task: asyncio.Future[Any], bound: float) -> bool:
    """Whether `task` finished within `bound` seconds, "one moment please" said over the wait.

    The prompt comes after FIRST_WAIT_S, then again after each REMIND_S, so the caller
    never hears 3 s of silence. A key during the prompt only cuts it: the action goes
    on and its outcome is said (the key is not another command). The task is left
    running; the caller decides whether to cancel it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    pause = FIRST_WAIT_S
    while True:
        left = deadline - loop.time()
        if left > 0:
            await asyncio.wait({task}, timeout=min(pause, left))
        if task.done():
            return True
        if loop.time() >= deadline:
            return False
        if not call.session.hungup:  # after a hang-up the work still gets its time
            with contextlib.suppress(KeyPressed):
                await call.saying.stream(prompts.ONE_MOMENT)
        pause = REMIND_S


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
        None, shared_folder, Path(call.runtime.setting("spool_dir")) / "rec")
    base = rec / f"menu-{call.scratch.next_name(what)}"
    wav = base.with_name(base.name + ".wav")
    # "#" skips the instructions to the beep, as in voicemail; no other key is listened for.
    await session.stream_file(prompts.LEAVE_MESSAGE, "#")
    result = await session.record_file(str(base), "wav", "#", MAX_REPLY_MS, beep=True,
                                       silence_s=SILENCE_S)
    size = await loop.run_in_executor(None, _size, wav)
    if result.outcome == "hangup" or session.hungup:
        await loop.run_in_executor(None, unlink_file, wav)
        raise AgiHangup("caller hung up while recording")
    if size <= WAV_HEADER:
        await loop.run_in_executor(None, unlink_file, wav)
        return None, 0
    return wav, max(result.endpos // SAMPLES_PER_MS, (size - WAV_HEADER) // 16)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


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
