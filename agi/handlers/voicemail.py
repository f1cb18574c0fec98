"""``agi://host/voicemail?mailbox=USER&greeting=KIND``: take a message.

Also run inline by ``route`` when the plan ends in voicemail. The greeting is
the user's own recording ``{greetings_dir}/{user}/{kind}.wav``, else the one
the greetings plugin generated (``generated-{kind}.wav``), else Asterisk's
stock prompts. The rule that
matters most: a message the caller left is never lost. The recording is
deposited whether the caller pressed ``#``, hung up during the recording (the
``voicemail-hangup`` trace: ``200 result=-1 (hangup) endpos=18032``) or hit the
time limit, and a caller who hung up before the beep still produces a
"missed call" deposit (``recording=None``). If the deposit itself fails, the
WAV stays in ``{spool_dir}/rec`` and the failure is logged with its path.

Paths are built from the policy's user id and Asterisk's ``agi_uniqueid``, both
passed through :func:`~mailcall.agi.safety.safe_component`; nothing the caller
typed reaches a path.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from mailcall.core.deposits import VoiceMessage
from mailcall.core.model import GREETING_KINDS

from ..driver import inline
from ..safety import caller_text, safe_component
from ..session import AgiHangup, AgiSession

log = logging.getLogger("mailcall.agi.voicemail")

STOCK_PROMPTS = {
    "unavailable": ("vm-isunavail", "vm-intro"),
    "busy": ("vm-isonphone", "vm-intro"),
    "absence": ("vm-isunavail", "vm-intro"),
}
"""Asterisk core sounds used when the user recorded no personal greeting."""
WAV_HEADER = 44
SAMPLES_PER_MS = 8
"""RECORD FILE ``endpos`` counts samples; the wav format is 8 kHz."""
SILENCE_S = 5


def reason_for(status: str | None) -> str:
    """VoiceMessage.reason for a DIALSTATUS."""
    return {"BUSY": "busy", "NOANSWER": "no-answer", "CHANUNAVAIL": "unavailable",
            "CONGESTION": "unavailable"}.get(status or "", "direct")


def greeting_path(runtime: Any, user_id: str, kind: str) -> Path:
    """The personal greeting (without extension: Asterisk picks the format)."""
    base = Path(runtime.setting("greetings_dir"))
    return base / safe_component(user_id, "user") / safe_component(kind, "unavailable")


def _first_existing(candidates: list[Path]) -> Path | None:
    for candidate in candidates:
        if candidate.with_name(candidate.name + ".wav").is_file():
            return candidate
    return None


def greeting_candidates(runtime: Any, user_id: str, kind: str) -> list[Path]:
    """Personal recording first, then the one the greetings plugin generated."""
    personal = greeting_path(runtime, user_id, kind)
    return [personal, personal.with_name("generated-" + personal.name)]


def _recording_base(runtime: Any, uniqueid: str) -> Path:
    rec = Path(runtime.setting("spool_dir")) / "rec"
    rec.mkdir(parents=True, exist_ok=True)
    stem = "vm-" + safe_component(uniqueid)
    candidate = rec / stem
    n = 1
    while candidate.with_name(candidate.name + ".wav").exists():
        n += 1
        candidate = rec / f"{stem}-{n}"
    return candidate


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


async def take_message(
    session: AgiSession,
    runtime: Any,
    *,
    mailbox: str,
    greeting: str,
    reason: str,
    extra: dict[str, str] | None = None,
) -> str:
    """Greet, record and deposit; returns the outcome for the session log.

    `extra` are more MAILCALL_* variables to leave with the final status.
    """
    more = dict(extra or {})
    policy = runtime.policy
    env = session.env
    user = policy.users.get(mailbox)
    if user is None:
        log.warning("voicemail for unknown mailbox %r on %s", mailbox, env.channel)
        await session.set_status("NO_MAILBOX", **more)
        return "NO_MAILBOX"
    if not user.features.voicemail.enabled:
        await session.set_status("NO_VOICEMAIL", **more)
        return "NO_VOICEMAIL"
    if greeting not in GREETING_KINDS or greeting not in user.features.greetings:
        greeting = "unavailable"
    loop = asyncio.get_running_loop()
    recording: str | None = None
    ended_by = ""
    duration_ms: int | None = None
    wav: Path | None = None
    stopping = False
    try:
        await session.answer()
        found = await loop.run_in_executor(
            None, _first_existing, greeting_candidates(runtime, user.id, greeting))
        played = await session.stream_file(str(found), "#") if found is not None else None
        if played is None or not played.played:
            for prompt in STOCK_PROMPTS[greeting]:
                result = await session.stream_file(prompt, "#")
                if result.digit:
                    break
        base = await loop.run_in_executor(None, _recording_base, runtime, env.uniqueid)
        wav = base.with_name(base.name + ".wav")
        max_ms = max(1, int(user.features.voicemail.max_seconds)) * 1000
        rec = await session.record_file(str(base), "wav", "#", max_ms, beep=True,
                                        silence_s=SILENCE_S)
        ended_by = rec.outcome if rec.outcome != "error" else ""
        if await loop.run_in_executor(None, _size, wav) > WAV_HEADER:
            recording = str(wav)
            duration_ms = rec.endpos // SAMPLES_PER_MS
    except (AgiHangup, asyncio.CancelledError) as exc:
        # The connection can die while RECORD FILE runs (Asterisk restarted, network),
        # or mailcall can be stopping: whatever Asterisk wrote is the caller's message.
        stopping = isinstance(exc, asyncio.CancelledError)
        ended_by = ended_by or ("" if stopping else "hangup")
        if recording is None:
            recording, duration_ms = await _salvage(wav)
    except Exception:
        # Asterisk refused a command (520 usage, 510 on an odd build...): the caller
        # still called, and may have spoken; deposit what there is, never nothing.
        log.exception("voicemail for %s on %s: a command failed; depositing what was "
                      "recorded", user.id, env.channel)
        ended_by = ended_by or "error"
        if recording is None:
            recording, duration_ms = await _salvage(wav)
    message = VoiceMessage(
        call_id=env.uniqueid,
        mailbox=user.id,
        caller_number=caller_text(env.callerid),
        caller_name=caller_text(env.calleridname),
        at=runtime.now(),
        reason=reason,
        recording=recording,
        duration_ms=duration_ms,
        ended_by=ended_by,
    )
    try:
        spool_id = await runtime.deposit(message)
    except Exception:
        if stopping:
            raise asyncio.CancelledError from None
        log.exception(
            "voicemail deposit FAILED for mailbox %s, call %s; the recording is kept at %s",
            user.id, env.uniqueid, recording or "(none: missed call)",
        )
        await session.set_status("DEPOSIT_FAILED", voicemail=user.id, greeting=greeting, **more)
        return "DEPOSIT_FAILED"
    session.outcome_detail = str(spool_id)
    if stopping:
        log.warning("server stopping: message of call %s deposited as it was (%s)",
                    env.uniqueid, recording or "nothing recorded")
        raise asyncio.CancelledError
    outcome = "VOICEMAIL" if recording else "MISSED_CALL"
    await session.set_status(outcome, voicemail=user.id, greeting=greeting, **more)
    return outcome


async def _salvage(wav: Path | None) -> tuple[str | None, int | None]:
    """What RECORD FILE left on disk when it did not answer normally, and how long it is."""
    if wav is None:
        return None, None
    size = await asyncio.get_running_loop().run_in_executor(None, _size, wav)
    if size <= WAV_HEADER:
        return None, None
    return str(wav), (size - WAV_HEADER) // (2 * SAMPLES_PER_MS)


@inline
async def handler(session: AgiSession, runtime: Any) -> str:
    """Direct voicemail: ``AGI(agi://127.0.0.1/voicemail,USER[,KIND])``."""
    env = session.env
    mailbox = env.arg(1) or env.param("mailbox") or ""
    greeting = env.arg(2) or env.param("greeting") or "unavailable"
    reason = env.param("reason") or "direct"
    if reason not in ("busy", "no-answer", "unavailable", "absent", "off-hours", "direct"):
        reason = "direct"
    policy = runtime.policy
    if mailbox not in policy.users:
        # An extension or number is accepted too: "voicemail,201".
        owner = policy.by_extension.get(mailbox) or policy.by_number.get(mailbox)
        if isinstance(owner, str) and owner in policy.users:
            mailbox = owner
    return await take_message(session, runtime, mailbox=mailbox, greeting=greeting, reason=reason)
