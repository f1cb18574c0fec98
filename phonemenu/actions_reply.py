"""Reply (3 then 1): to a colleague's voicemail, a voice message in their mailbox; to an
e-mail, a recorded voice reply mailed through the organisation's relay.

The mail goes through ``[channels] relay`` (the notifications' one SMTP client).
A reply the relay has not taken within ``RELAY_WAIT_S`` is cancelled and the
caller hears that nothing was sent; the recording stays in the spool's rec/ and
the log says where and what to do. There is no durable queue for outgoing mail
(the notification queue holds notices, not audio), so this is the honest outcome
rather than "sent later".
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

from mailcall.agi.safety import caller_text
from mailcall.core.policy.numbers import find_owner
from mailcall.core.text import display_text

from .actions_common import (
    deposit,
    is_deposit,
    own_number,
    quiet_task,
    record,
    unlink_file,
    waiting,
)

if TYPE_CHECKING:
    from mailcall.mailstore.summary import MessageSummary

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

RELAY_WAIT_S = 8.0
"""How long a caller waits for the relay to take a voice reply; past it, not sent."""


_BACKGROUND: set[asyncio.Future[Any]] = set()
"""Voice replies still being mailed after the caller hung up."""


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
    if ok:
        await mark_answered(call, message)
    await call.saying.phrase("reply_sent" if ok else "not_sent")


async def mark_answered(call: MenuCall, message: MessageSummary) -> None:
    """The original flagged \\Answered, as a mail client does after a reply. Any failure
    is logged and nothing more: the reply was sent, and the caller hears that it was."""
    box = await call.mailbox.session(speak=False)
    if box is None:
        log.warning("phone menu for %s: reply sent, message %s not flagged \\Answered: no "
                    "IMAP session (see the log lines above)", call.user.id, message.uid)
        return
    try:
        await box.mark_answered(message)  # False (logged by the store) if the ACL lacks "w"
    except call.unreadable as exc:
        log.info("phone menu for %s: reply sent, message %s not flagged \\Answered: %s",
                 call.user.id, message.uid, exc)
    except call.unavailable as exc:
        call.mailbox.failed(exc)


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
        task.add_done_callback(quiet_task)
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
    sent = task.result()
    if sent:
        await mark_answered(call, message)
    await call.saying.phrase("reply_sent" if sent else "not_sent")


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
    await loop.run_in_executor(None, unlink_file, wav)
    return True


__all__ = ["mark_answered", "reply", "reply_address", "reply_mail"]
