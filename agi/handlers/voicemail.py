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

When mailcall stops during a call (the server cancels handlers still running
after its grace period), the message is still deposited before the
cancellation goes on. The deposit runs in a task of its own behind
:func:`asyncio.shield`, so a second cancellation while it runs (the server's
last wait running out, ``asyncio.run`` tearing the loop down) does not cut it
either: the handler waits for it and only then lets the cancellation through.
If the deposit fails or is itself cancelled, the recording's path is logged at
ERROR with what to do: "delivered or reported", never silently dropped.

Asterisk writes recordings and greetings into folders mailcall creates
(``rec/``, ``{greetings_dir}/{user}/``). They are made group-writable
explicitly (:func:`mailcall.agi.folders.shared_folder`, mode 2770 as
``docs/asterisk.md`` section 2 sets up the parents), not left to the umask:
the shipped systemd unit runs mailcall with ``UMask=0027``, which would make
them 2750 and Asterisk's ``RECORD FILE`` would fail.

Paths are built from the policy's user id (by the one rule of
:func:`mailcall.agi.folders.greeting_path`) and Asterisk's ``agi_uniqueid``
(through :func:`~mailcall.agi.safety.safe_component`); nothing the caller typed
reaches a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Any

from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.core.policy.model import GREETING_KINDS
from mailcall.core.policy.numbers import find_mailbox, language_of
from mailcall.userstore.overlay import decision_policy

from .. import prompts
from ..driver import inline
from ..folders import (
    SAMPLES_PER_MS,
    WAV_HEADER,
    GreetingPathRefused,
    file_size,
    generated_greeting_path,
    greeting_path,
    recorded_ms,
    recordings_folder,
    shared_folder,
)
from ..replies import DIAL_CONDITIONS
from ..safety import caller_name, caller_text, safe_component
from ..session import AgiHangup, AgiSession

log = logging.getLogger("mailcall.agi.voicemail")

SILENCE_S = 5


def reason_for(status: str | None) -> str:
    """VoiceMessage.reason for a DIALSTATUS: "direct" when nothing was rung."""
    return DIAL_CONDITIONS.get(status or "", "direct")


def _first_existing(candidates: list[Path]) -> Path | None:
    for candidate in candidates:
        if candidate.with_name(candidate.name + ".wav").is_file():
            return candidate
    return None


def greeting_candidates(runtime: Any, user_id: str, kind: str) -> list[Path]:
    """Personal recording first, then the one the greetings plugin generated.

    Empty when the user id cannot name a greeting folder (:class:`GreetingPathRefused`,
    logged): the caller hears the stock prompts and the message is still taken.
    """
    base = Path(runtime.setting("greetings_dir"))
    try:
        return [greeting_path(base, user_id, kind), generated_greeting_path(base, user_id, kind)]
    except GreetingPathRefused as exc:
        log.error("voicemail for %s: no personal greeting played: %s", caller_text(user_id), exc)
        return []


def _recording_base(runtime: Any, uniqueid: str) -> Path:
    rec = shared_folder(recordings_folder(runtime.setting("spool_dir")))
    stem = "vm-" + safe_component(uniqueid)
    candidate = rec / stem
    n = 1
    while candidate.with_name(candidate.name + ".wav").exists():
        n += 1
        candidate = rec / f"{stem}-{n}"
    return candidate


async def take_message(
    session: AgiSession,
    runtime: Any,
    *,
    mailbox: str,
    greeting: str,
    reason: str,
    extra: dict[str, str] | None = None,
    policy: Any = None,
) -> str:
    """Greet, record and deposit; returns the outcome for the session log.

    `extra` are more MAILCALL_* variables to leave with the final status; `policy` is the
    one the call was routed with (default: the policy refined by the user store now).
    """
    more = dict(extra or {})
    if policy is None:
        policy = decision_policy(runtime)
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
        await session.set_language(user.language)
        await session.answer()
        found = await loop.run_in_executor(
            None, _first_existing, greeting_candidates(runtime, user.id, greeting))
        played = await session.stream_file(str(found), "#") if found is not None else None
        if played is None or not played.played:
            for prompt in prompts.STOCK_GREETINGS[greeting]:
                result = await session.stream_file(prompt, "#")
                if result.digit:
                    break
        base = await loop.run_in_executor(None, _recording_base, runtime, env.uniqueid)
        wav = base.with_name(base.name + ".wav")
        max_ms = max(1, int(user.features.voicemail.max_seconds)) * 1000
        rec = await session.record_file(str(base), "wav", "#", max_ms, beep=True,
                                        silence_s=SILENCE_S)
        ended_by = rec.outcome if rec.outcome != "error" else ""
        if await loop.run_in_executor(None, file_size, wav) > WAV_HEADER:
            recording = str(wav)
            duration_ms = rec.endpos // SAMPLES_PER_MS
    except (AgiHangup, asyncio.CancelledError) as exc:
        # The connection can die while RECORD FILE runs (Asterisk restarted, network),
        # or mailcall can be stopping: whatever Asterisk wrote is the caller's message.
        stopping = isinstance(exc, asyncio.CancelledError)
        ended_by = ended_by or ("" if stopping else "hangup")
        if recording is None:
            recording, duration_ms = _salvage(wav)
    except Exception:
        # Asterisk refused a command (520 usage, 510 on an odd build...): the caller
        # still called, and may have spoken; deposit what there is, never nothing.
        log.exception("voicemail for %s on %s: a command failed; depositing what was "
                      "recorded", user.id, env.channel)
        ended_by = ended_by or "error"
        if recording is None:
            recording, duration_ms = _salvage(wav)
    message = VoiceMessage(
        call_id=env.uniqueid,
        mailbox=user.id,
        caller_number=caller_text(env.callerid),
        caller_name=caller_name(env.calleridname),
        at=runtime.now(),
        reason=reason,
        recording=recording,
        duration_ms=duration_ms,
        ended_by=ended_by,
    )
    deposit = asyncio.ensure_future(runtime.deposit(message))
    stopping = await _settle(deposit) or stopping
    if deposit.cancelled():
        # Only the event loop going away cancels the deposit task itself.
        log.error("voicemail deposit INTERRUPTED (mailcall stopping) for mailbox %s, call %s: "
                  "it may or may not be in the spool; after the restart look for call %s in "
                  "`mailcall spool list`. %s", user.id, env.uniqueid, env.uniqueid,
                  _what_is_kept(message))
        raise asyncio.CancelledError
    failure = deposit.exception()
    if failure is not None:
        log.error("voicemail deposit FAILED for mailbox %s, call %s: %s: %s. Fix the spool "
                  "(disk full? permissions of spool_dir?). %s", user.id, env.uniqueid,
                  type(failure).__name__, failure, _what_is_kept(message), exc_info=failure)
        if stopping:
            raise asyncio.CancelledError
        await session.set_status("DEPOSIT_FAILED", voicemail=user.id, greeting=greeting, **more)
        return "DEPOSIT_FAILED"
    session.outcome_detail = str(deposit.result())
    if stopping:
        log.warning("server stopping: message of call %s deposited as it was (%s)",
                    env.uniqueid, recording or "nothing recorded")
        raise asyncio.CancelledError
    outcome = "VOICEMAIL" if recording else "MISSED_CALL"
    await session.set_status(outcome, voicemail=user.id, greeting=greeting, **more)
    return outcome


def _what_is_kept(message: VoiceMessage) -> str:
    """The end of an ERROR line about a deposit that did not happen: what the admin still has."""
    if message.recording is None:
        return (f"Nothing was recorded: it was a missed call from {message.caller_number or '?'} "
                f"at {message.at:%Y-%m-%d %H:%M}; tell {message.mailbox}")
    return (f"The recording is kept at {message.recording}: it is the caller's message "
            f"(from {message.caller_number or '?'} at {message.at:%Y-%m-%d %H:%M}); forward "
            f"it to {message.mailbox} by hand, mailcall will not retry it")


async def _settle(deposit: asyncio.Future[Any]) -> bool:
    """Wait until `deposit` is done, through any cancellation; True if we were cancelled.

    The shield keeps a cancellation of this handler from reaching the deposit;
    catching it and waiting again keeps a *second* one (or a third) from
    abandoning the deposit half-way. The caller re-raises CancelledError once
    the deposit is done or reported, so the cancellation still propagates.
    """
    cancelled = False
    while not deposit.done():
        try:
            with contextlib.suppress(Exception):  # the caller reads it from the future
                await asyncio.shield(deposit)
        except asyncio.CancelledError:
            cancelled = True
    return cancelled


def _salvage(wav: Path | None) -> tuple[str | None, int | None]:
    """What RECORD FILE left on disk when it did not answer normally, and how long it is.

    Called on the event loop on purpose: it is one ``stat()`` of a local file,
    and on these paths no await may come before the deposit is under way (a
    cancellation there, e.g. mailcall stopping, would skip the deposit).
    """
    if wav is None:
        return None, None
    size = file_size(wav)
    if size <= WAV_HEADER:
        return None, None
    return str(wav), recorded_ms(size)


@inline
async def handler(session: AgiSession, runtime: Any) -> str:
    """Direct voicemail: ``AGI(agi://127.0.0.1/voicemail,USER[,KIND])``."""
    env = session.env
    mailbox = env.arg(1) or env.param("mailbox") or ""
    greeting = env.arg(2) or env.param("greeting") or "unavailable"
    reason = env.param("reason") or "direct"
    if reason not in ("busy", "no-answer", "unavailable", "absent", "off-hours", "direct"):
        reason = "direct"
    policy = decision_policy(runtime)
    # A user id, or an extension or number ("voicemail,201", "voicemail,0140000201"):
    # the number's owner, or the group's mailbox.
    found = find_mailbox(policy, mailbox)
    await session.set_language(language_of(policy, found))
    if found is None:
        log.warning("voicemail on %s: nobody in the policy has mailbox, extension or number "
                    "%r (AGI argument 1); check the dialplan's AGI(.../voicemail,MAILBOX) "
                    "and the users' extensions and numbers", env.channel, caller_text(mailbox))
        await session.set_status("NO_MAILBOX")
        return "NO_MAILBOX"
    return await take_message(session, runtime, mailbox=found, greeting=greeting, reason=reason,
                              policy=policy)
