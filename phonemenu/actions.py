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
"""

from __future__ import annotations

import asyncio
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

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

MAX_REPLY_MS = 120_000
SILENCE_S = 3


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


async def reply(call: MenuCall, folder: str, message: Any) -> None:
    if folder == "voice":
        await _reply_voice(call, message)
    else:
        await _reply_mail(call, message)


async def _reply_voice(call: MenuCall, message: Any) -> None:
    policy = call.runtime.policy
    number = getattr(message, "caller_number", None)
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
    out["To"] = Address(addr_spec=message.sender_address)
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


def _msgid(value: str | None) -> str | None:
    """A ``<...>`` message id with nothing that could break a header, else None."""
    text = display_text(value or "", 250)
    if text.startswith("<") and text.endswith(">") and " " not in text and text.count("<") == 1:
        return text
    return None


async def _reply_mail(call: MenuCall, message: Any) -> None:
    from mailcall.notifications.relay import relay_sender

    if not getattr(message, "sender_address", ""):
        await call.saying.phrase("no_reply")
        return
    wav, _ms = await record(call, "mailreply")
    if wav is None:
        await call.saying.phrase("not_sent")
        return
    loop = asyncio.get_running_loop()
    try:
        audio = await loop.run_in_executor(None, wav.read_bytes)
        mail = reply_mail(call.runtime.policy, call.user, message, audio)
        receipt = await relay_sender(call.runtime)(mail)
    except Exception as exc:
        log.error("phone menu: voice reply of %s to %s not sent: %s: %s (the recording is "
                  "kept at %s)", call.user.id, caller_text(message.sender_address),
                  type(exc).__name__, exc, wav)
        await call.saying.phrase("not_sent")
        return
    log.info("phone menu: voice reply of %s mailed: %s", call.user.id, receipt)
    await loop.run_in_executor(None, _unlink, wav)
    await call.saying.phrase("reply_sent")


# ------------------------------------------------------------------ call back


async def call_back(call: MenuCall, folder: str, message: Any) -> None:
    policy = call.runtime.policy
    number = getattr(message, "caller_number", None) if folder == "voice" else None
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
    choice = (await session.get_data(prompts.FORWARD_OPTIONS, DIGIT_WAIT_MS, 1)).digits
    preface: Path | None = None
    if choice == "1":
        preface, _ms = await record(call, "preface")
    try:
        sln = await call.mailbox.slow(call.presenter.audio_of(message))
    except (*call.unreadable, *call.unavailable) as exc:
        log.warning("phone menu: forward by %s: the message cannot be read: %s",
                    call.user.id, exc)
        await call.saying.phrase("cannot_play")
        return
    loop = asyncio.get_running_loop()
    rec = Path(call.runtime.setting("spool_dir")) / "rec"
    out = rec / f"menu-{call.scratch.next_name('forward')}.wav"
    ms = await loop.run_in_executor(None, join_audio, preface, Path(sln + ".sln"), out)
    if preface is not None:
        await loop.run_in_executor(None, _unlink, preface)
    ok = await deposit(call, target, out, ms, what="forward",
                       caller_number=getattr(message, "caller_number", None) or "",
                       caller_name=getattr(message, "caller_name", None) or "")
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


__all__ = ["call_back", "deposit", "forward", "join_audio", "record", "reply", "reply_mail"]
