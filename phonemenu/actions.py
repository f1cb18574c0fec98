"""The menu's actions that leave the mailbox: reply, forward, call back.

Each changes things the way the rest of mailcall already does them, so that
nothing new can go wrong: a voice reply or a forward to a colleague is a
:class:`~mailcall.core.decisions.deposits.VoiceMessage` handed to the durable
spool (``runtime.deposit``, as the voicemail handler does), a reply to an
e-mail is mailed through the organisation's relay (``[channels] relay``, the
notifications' one SMTP client), a call back is ``Dial`` with the policy's
``[telephony]`` templates (:func:`mailcall.core.policy.telephony.dial_string`,
which refuses anything but digits), and a greeting is recorded under a
temporary name and renamed, as the greeting menu does.

Nothing a caller or a sender wrote decides what is dialled or where a file
goes: the number called back is the deposit's caller number, checked to be
plain digits; colleagues are found by the policy from digits the user typed;
paths come from the policy's user ids and Asterisk's uniqueid.

No dead air: work that can be slow (the relay, the message's audio) is awaited
by :func:`waiting`, which says "one moment please" within a second and again
every two, and gives up at a bound. A reply the relay has not taken by then is
cancelled and the caller hears that nothing was sent; the recording stays in
the spool's rec/ and the log says where and what to do. There is no durable
queue for outgoing mail (the notification queue holds notices, not audio), so
this is the honest outcome rather than "sent later".
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import logging
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import soundfile

from mailcall.agi import prompts
from mailcall.agi.folders import shared_folder
from mailcall.agi.handlers.voicemail import SAMPLES_PER_MS, WAV_HEADER
from mailcall.agi.safety import caller_text, is_dial_number
from mailcall.agi.session import AgiHangup
from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.core.decisions.plans import Endpoint
from mailcall.core.policy.numbers import find_mailbox, find_owner, is_extension
from mailcall.core.policy.telephony import UnsafeEndpoint, dial_string
from mailcall.core.text import display_text

from .entry import DIGIT_WAIT_MS
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
RELAY_WAIT_S = 8.0
"""How long a caller waits for the relay to take a voice reply; past it, not sent."""
AUDIO_WAIT_S = 8.0
"""How long a forward waits for the message's audio; past it, not forwarded."""
FORWARD_TRIES = 3
"""How often the forward options are asked when the caller says nothing."""


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


_BACKGROUND: set[asyncio.Future[Any]] = set()
"""Voice replies still being mailed after the caller hung up."""


def _quiet(task: asyncio.Future[Any]) -> None:
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
        await loop.run_in_executor(None, _unlink, wav)
        raise AgiHangup("caller hung up while recording")
    if size <= WAV_HEADER:
        await loop.run_in_executor(None, _unlink, wav)
        return None, 0
    return wav, max(result.endpos // SAMPLES_PER_MS, (size - WAV_HEADER) // 16)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return -1


def _unlink(path: Path) -> None:
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


# ------------------------------------------------------------------ reply


def is_deposit(message: MessageSummary) -> bool:
    """A voice or fax deposit (sealed), wherever the user filed it: its From is mailcall's
    own sender, the person is the caller number the deposit wrote."""
    return message.kind in ("voice", "fax")


async def reply(call: MenuCall, folder: str, message: Any) -> None:
    # By what the message is, not where it sits: a deposit moved to the INBOX is still
    # answered to the caller, never to mailcall's own sender address.
    if is_deposit(message):
        await _reply_voice(call, message)
    else:
        await _reply_mail(call, message)


async def _reply_voice(call: MenuCall, message: MessageSummary) -> None:
    policy = call.runtime.policy
    number = message.caller_number
    owner = find_owner(policy, number, mobiles=True) if number else None
    if owner is None or owner not in policy.users:
        await call.saying.phrase("no_reply")
        return
    wav, ms = await record(call, "reply")
    if wav is None:
        await call.saying.phrase("not_sent")
        return
    ok = await deposit(call, owner, wav, ms, what="reply", caller_number=own_number(call.user),
                       caller_name=call.user.name)
    await call.saying.phrase("reply_sent" if ok else "not_sent")


def reply_mail(policy: Any, user: Any, message: Any, audio: bytes) -> EmailMessage:
    """The voice reply to `message`: from the user, to its sender, threaded, audio attached.

    Subject, addresses and ids come from the mail store's summary, already cleaned;
    they are passed through the email package's header objects, which refuse line
    breaks, so a hostile Subject or Message-ID cannot add a header.
    """
    out = EmailMessage(policy=email.policy.SMTP)
    out["From"] = Address(display_text(user.name, 80), addr_spec=user.email)
    out["To"] = Address(addr_spec=reply_address(message))
    subject = display_text(message.subject or "", 160)
    if not subject.lower().startswith("re:"):
        subject = f"Re: {subject}" if subject else "Re:"
    out["Subject"] = subject
    out["Date"] = formatdate(localtime=False)
    out["Message-ID"] = make_msgid(domain=policy.organisation.domain)
    msgid = _msgid(message.message_id)
    if msgid:
        out["In-Reply-To"] = msgid
        refs = [r for r in (_msgid(x) for x in (message.references or ())) if r][-10:]
        out["References"] = " ".join([*refs, msgid] if msgid not in refs else refs)
    out.set_content(f"{display_text(user.name, 80)} answered by phone: the reply is the "
                    "attached recording.\n", cte="quoted-printable")
    out.add_attachment(audio, maintype="audio", subtype="wav", filename="reply.wav")
    return out


def reply_address(message: MessageSummary) -> str:
    """Where a reply goes: the one Reply-To address if the mail gave a usable one (the
    summary keeps only a single plain address), else the From address; "" for none."""
    return message.reply_to or message.sender_address or ""


def _msgid(value: str | None) -> str | None:
    """A ``<...>`` message id with nothing that could break a header, else None."""
    text = display_text(value or "", 250)
    if text.startswith("<") and text.endswith(">") and " " not in text and text.count("<") == 1:
        return text
    return None


async def _reply_mail(call: MenuCall, message: MessageSummary) -> None:
    to = reply_address(message)
    if not to:
        await call.saying.phrase("no_reply")
        return
    wav, _ms = await record(call, "mailreply")
    if wav is None:
        await call.saying.phrase("not_sent")
        return
    who = caller_text(to)
    task = asyncio.ensure_future(_mail_reply(call, message, wav))
    try:
        finished = await waiting(call, task, RELAY_WAIT_S)
    except BaseException:
        # The caller hung up over "one moment": the send goes on within its own bound and
        # its outcome is logged by _mail_reply (sent, or the recording kept and named).
        _BACKGROUND.add(task)  # asyncio keeps only a weak reference to a task
        task.add_done_callback(_BACKGROUND.discard)
        task.add_done_callback(_quiet)
        raise
    if not finished:
        task.cancel()
        log.error("phone menu: voice reply of %s to %s not sent: the relay ([channels] "
                  "relay) did not take it within %.0f s, the caller was told nothing was "
                  "sent. If the relay logged it as taken anyway, it went out; else the "
                  "recording is kept at %s: send it by hand or delete it, and check the "
                  "relay (docs/notifications.md)", call.user.id, who, RELAY_WAIT_S, wav)
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await call.saying.phrase("not_sent")
        return
    await call.saying.phrase("reply_sent" if task.result() else "not_sent")


async def _mail_reply(call: MenuCall, message: MessageSummary, wav: Path) -> bool:
    """Mail the recorded reply through the relay; True when it took it (the recording is
    then removed), False with the reason and the kept recording logged."""
    from mailcall.notifications.relay import RELAY_TIMEOUT, relay_sender

    loop = asyncio.get_running_loop()
    who = caller_text(reply_address(message))
    try:
        audio = await loop.run_in_executor(None, wav.read_bytes)
        mail = reply_mail(call.runtime.policy, call.user, message, audio)
        async with asyncio.timeout(RELAY_TIMEOUT):
            receipt = await relay_sender(call.runtime)(mail)
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        log.error("phone menu: voice reply of %s to %s not sent: %s: %s. The recording is "
                  "kept at %s: send it by hand or delete it, and check [channels] relay "
                  "(docs/notifications.md)", call.user.id, who, type(exc).__name__,
                  display_text(str(exc), 300) or "timed out", wav)
        return False
    log.info("phone menu: voice reply of %s mailed: %s", call.user.id, receipt)
    await loop.run_in_executor(None, _unlink, wav)
    return True


# ------------------------------------------------------------------ call back


async def call_back(call: MenuCall, folder: str, message: MessageSummary) -> None:
    policy = call.runtime.policy
    # The deposit's caller number, whatever folder it sits in; a mail has none.
    number = message.caller_number if is_deposit(message) else None
    if not number or not is_dial_number(number):
        await call.saying.stream(prompts.NO_NUMBER)
        return
    kind = "extension" if is_extension(policy, number) else "number"
    try:
        target = dial_string(policy, Endpoint(kind, number))
    except UnsafeEndpoint:
        await call.saying.stream(prompts.NO_NUMBER)
        return
    log.info("phone menu: %s calls back %s (%s)", call.user.id, number, target)
    # "g": when the person called back hangs up, the caller goes on in the menu.
    status = await call.session.dial(f"{target},{policy.telephony.ring_time},g")
    log.info("phone menu: call back of %s by %s ended: %s", number, call.user.id, status)


# ------------------------------------------------------------------ forward


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
            await asyncio.get_running_loop().run_in_executor(None, _unlink, preface)


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
    except BaseException:
        task.add_done_callback(_quiet)
        raise
    if not finished:
        # The presenter's own task: cancelling it makes the next play fetch it again.
        task.cancel()
        task.add_done_callback(_quiet)
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
        None, shared_folder, Path(call.runtime.setting("spool_dir")) / "rec")
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


__all__ = ["call_back", "deposit", "forward", "is_deposit", "join_audio", "record", "reply",
           "reply_address", "reply_mail", "waiting"]
