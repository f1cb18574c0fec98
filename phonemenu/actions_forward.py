"""Forward (8): a voice message to a colleague's mailbox by extension, with an optional
recorded preface.

The colleague is found by the policy from the digits the user typed; the
message's audio (the presenter's decoded copy) and the preface are joined into
one WAV and deposited through the spool, as a voicemail is.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile

from mailcall.agi import prompts
from mailcall.agi.folders import SAMPLES_PER_MS, recordings_folder, shared_folder
from mailcall.agi.session import AgiHangup
from mailcall.core.policy.numbers import find_mailbox

from .actions_common import deposit, quiet_task, record, unlink_file, waiting
from .entry import DIGIT_WAIT_MS

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

AUDIO_WAIT_S = 8.0
"""How long a forward waits for the message's audio; past it, not forwarded."""
FORWARD_TRIES = 3
"""How often the forward options are asked when the caller says nothing."""


async def forward(call: MenuCall, folder: str, message: Any) -> None:
    if folder != "voice":
        await call.saying.phrase("not_for_mail")
        return
    session = call.session
    policy = call.runtime.policy
    typed = (await session.get_data(prompts.ENTER_EXTENSION, DIGIT_WAIT_MS, 12)).digits
    target = find_mailbox(policy, typed.rstrip("#")) if typed else None
    if target is None:
        await call.saying.stream(prompts.NOT_AN_EXTENSION)
        return
    choice = await _forward_choice(call)
    if choice is None:
        await call.saying.phrase("not_sent")
        return
    preface: Path | None = None
    try:
        if choice == "1":
            preface, _ms = await record(call, "preface")
        await _forward_to(call, target, message, preface)
    finally:
        if preface is not None:
            await asyncio.get_running_loop().run_in_executor(None, unlink_file, preface)


async def _forward_choice(call: MenuCall) -> str | None:
    """"1" (record a preface) or "2" (none); None when the caller gives neither.

    Silence or another key asks again (FORWARD_TRIES in all): the message is never
    forwarded on a choice the caller did not make.
    """
    for _ in range(FORWARD_TRIES):
        choice = (await call.session.get_data(prompts.FORWARD_OPTIONS, DIGIT_WAIT_MS,
                                              1)).digits
        if choice in ("1", "2"):
            return choice
        if choice == "*":
            return None
        if choice:
            await call.saying.stream(prompts.INVALID_CHOICE)
    return None


async def _forward_to(call: MenuCall, target: str, message: Any,
                      preface: Path | None) -> None:
    task = call.presenter.audio_of(message)
    try:
        finished = await waiting(call, task, AUDIO_WAIT_S)
    except AgiHangup:
        # Gone during "one moment please", the colleague chosen and the preface recorded:
        # like a voicemail left before hanging up, the forward is still made (the prompts
        # after it find the channel gone and end the call).
        await asyncio.wait({task}, timeout=AUDIO_WAIT_S)
        finished = task.done()
    except BaseException:
        task.add_done_callback(quiet_task)
        raise
    if not finished:
        # The presenter's own task: cancelling it makes the next play fetch it again.
        task.cancel()
        task.add_done_callback(quiet_task)
        log.warning("phone menu: forward by %s: the message's audio was not ready within "
                    "%.0f s; nothing forwarded", call.user.id, AUDIO_WAIT_S)
        await call.saying.phrase("not_sent")
        return
    try:
        sln = task.result()
    except (*call.unreadable, *call.unavailable) as exc:
        log.warning("phone menu: forward by %s: the message cannot be read: %s",
                    call.user.id, exc)
        await call.saying.phrase("cannot_play")
        return
    loop = asyncio.get_running_loop()
    # Made here too: with no preface recorded, nothing has created rec/ yet.
    rec = await loop.run_in_executor(
        None, shared_folder, recordings_folder(call.runtime.setting("spool_dir")))
    out = rec / f"menu-{call.scratch.next_name('forward')}.wav"
    ms = await loop.run_in_executor(None, join_audio, preface, Path(sln + ".sln"), out)
    ok = await deposit(call, target, out, ms, what="forward",
                       caller_number=message.caller_number or "",
                       caller_name=message.caller_name or "")
    if ok:
        await call.saying.stream(prompts.FORWARDED)
    else:
        await call.saying.phrase("not_sent")


def join_audio(preface: Path | None, sln: Path, out: Path) -> int:
    """`preface` (Asterisk's 8 kHz WAV) then the message (raw 8 kHz s16le) as one WAV; ms."""
    parts = []
    if preface is not None:
        data, rate = soundfile.read(str(preface), dtype="int16")
        if rate == 8000:
            parts.append(data.reshape(-1))
    parts.append(np.fromfile(sln, dtype="<i2"))
    joined = np.concatenate(parts) if parts else np.zeros(0, dtype="<i2")
    tmp = out.with_name(out.name + ".tmp")
    soundfile.write(str(tmp), joined, 8000, subtype="PCM_16", format="WAV")
    tmp.replace(out)
    return len(joined) // SAMPLES_PER_MS


__all__ = ["forward", "join_audio"]
