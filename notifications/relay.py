"""Mail mailcall sends to the outside world: SMS-gateway mails and e-mail notices.

They go to ``[channels] relay``, an SMTP server that routes mail out (the
local MTA by default), never to ``[delivery]``: that is the route into the
local mailboxes, and with ``method = "lmtp"`` it is Dovecot's LMTP, which
answers 550 for any address that is not a local user (the SMS gateway's).

Sent with the project's one SMTP client (:mod:`mailcall.deposit.mail_protocol`
over :func:`mailcall.deposit.delivery.deliver`): its replies say exactly
whether a refusal is temporary (4xx, refused, timeout: retried) or permanent
(5xx: reported once).
"""

from __future__ import annotations

import email.policy
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr

from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.model import Policy
from mailcall.core.sansio import LocalProtocolError
from mailcall.core.text import display_text
from mailcall.deposit.delivery import Target, deliver, parse_target
from mailcall.deposit.mail_protocol import Delivered

from .channel import PermanentChannelError, TemporaryChannelError

MailSender = Callable[[EmailMessage], Awaitable[str | None]]
"""Hands a generated mail over; returns a receipt for the log, raises ChannelError."""

RELAY_TIMEOUT = 25.0
"""Seconds for one whole SMTP transaction (inside the dispatcher's own 30 s)."""


def one_line(value: str, limit: int = 200) -> str:
    """Header-safe text (no CR/LF, control, bidi or format character), bounded."""
    return display_text(value, limit)


def sender_address(policy: Policy) -> str:
    return policy.sender


def relay_target(policy: Policy) -> Target:
    """``[channels] relay`` as an SMTP target (checked by ``mailcall check``)."""
    try:
        return parse_target("smtp", policy.channels.relay)
    except ValueError as exc:
        raise PermanentChannelError(
            f"[channels] relay {policy.channels.relay!r} is not host:port ({exc})") from None


def generated_message(policy: Policy, to: str, subject: str, text: str) -> EmailMessage:
    """A mail mailcall writes itself: marked per RFC 3834 so nobody auto-answers it."""
    msg = EmailMessage()
    msg["From"] = sender_address(policy)
    msg["To"] = to
    msg["Subject"] = one_line(subject, 160)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=policy.organisation.domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "All"
    # Quoted-printable: 7-bit on the wire, whatever the relay says of 8BITMIME.
    msg.set_content(text, cte="quoted-printable")
    return msg


def relay_sender(runtime: Runtime) -> MailSender:
    """Send generated mail through the policy's ``[channels] relay`` (read at each send)."""

    async def send(message: EmailMessage) -> str:
        policy = runtime.policy
        target = relay_target(policy)
        where = "relay " + str(target).removeprefix("smtp ")
        to = parseaddr(str(message["To"]))[1]
        try:
            events = await deliver(
                target, sender=sender_address(policy), recipients=[to],
                message=message.as_bytes(policy=email.policy.SMTP), timeout=RELAY_TIMEOUT,
                setting="policy [channels] relay", guide="docs/notifications.md")
        # An address the transaction refuses to write (LocalProtocolError), or as before any
        # ValueError (a relay name the IDNA codec refuses is a UnicodeError).
        except (LocalProtocolError, ValueError) as exc:
            raise PermanentChannelError(f"not a mail address: {exc}") from None
        event = events[0]
        if isinstance(event, Delivered):
            return f"{where} took {to}: {display_text(str(event.reply), 200)}"
        reason = display_text(event.reason, 300)
        if event.permanent:
            raise PermanentChannelError(f"{where} refused {to}: {reason}")
        raise TemporaryChannelError(f"{where} did not take {to}: {reason}")

    return send
