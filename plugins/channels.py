"""Built-in notification channels: e-mail-to-SMS gateway, HTTP webhook, JSON-lines file.

Each channel is created per runtime (no module state) and reads the policy at
send time, so a reloaded policy's gateway or URL applies to the next message.
``send`` raises on failure; the dispatcher (``mailcall.sieve.notifications``)
decides what to log, rate-limit and de-duplicate.

Why the standard library for HTTP: a webhook is one small JSON POST with a
timeout and two retries; ``urllib.request`` run in the loop's executor does
that without adding a dependency to every installation (aiohttp and httpx are
not installed by default and bring a dozen packages with them).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import smtplib
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from mailcall.core.hookspecs import hookimpl
from mailcall.core.model import Policy
from mailcall.core.plans import Notify
from mailcall.core.runtime import Runtime

log = logging.getLogger("mailcall.channels")

MailSender = Callable[[EmailMessage], Awaitable[None]]


class ChannelError(Exception):
    """A notification could not be handed over; the message says where and why."""


def one_line(value: str, limit: int = 200) -> str:
    """Header-safe text: no CR/LF or control characters (no header injection), bounded."""
    text = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in value)
    return " ".join(text.split())[:limit]


def sender_address(policy: Policy) -> str:
    return policy.delivery.sender or f"mailcall@{policy.organisation.domain}"


def _split_address(address: str) -> tuple[str, int | None]:
    if address.startswith("unix:"):
        return address[5:], None
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ChannelError(f"delivery.address {address!r}: expected host:port or unix:/path")
    return host.strip("[]"), int(port)


def _send_blocking(policy: Policy, message: EmailMessage) -> None:
    method = policy.delivery.method
    host, port = _split_address(policy.delivery.address)
    client: smtplib.SMTP
    if method == "smtp":
        client = smtplib.SMTP(host, port or 25, timeout=10) if port else smtplib.SMTP(timeout=10)
        if port is None:
            raise ChannelError("delivery.method smtp needs delivery.address host:port")
    else:
        client = smtplib.LMTP(host, port or 24, timeout=10) if port else smtplib.LMTP(host)
    with client:
        refused = client.send_message(message)
    if refused:
        raise ChannelError(
            f"{method} server at {policy.delivery.address} refused {sorted(refused)}")


def delivery_sender(runtime: Runtime) -> MailSender:
    """Send mail through the policy's [delivery] settings (SMTP or LMTP), off the event loop."""

    async def send(message: EmailMessage) -> None:
        policy = runtime.policy
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, _send_blocking, policy, message)
        except (OSError, smtplib.SMTPException) as exc:
            raise ChannelError(
                f"cannot send through {policy.delivery.method} {policy.delivery.address}: {exc}"
            ) from exc

    return send


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
    msg.set_content(text)
    return msg


class SmsGatewayChannel:
    """SMS through the operator's e-mail-to-SMS gateway (``channels.sms_gateway`` template).

    The template may use ``{number}`` (E.164, "+33612345678") or ``{digits}``
    ("33612345678").
    """

    medium = "sms"

    def __init__(self, runtime: Runtime, send: MailSender | None = None) -> None:
        self.runtime = runtime
        self._send = send or delivery_sender(runtime)

    def gateway_address(self, number: str) -> str:
        template = self.runtime.policy.channels.sms_gateway
        if not template:
            raise ChannelError("channels.sms_gateway is not set in the policy: SMS cannot be sent")
        clean = "".join(ch for ch in number if ch.isdigit() or ch == "+")
        if not clean.lstrip("+"):
            raise ChannelError(f"not a phone number: {number!r}")
        return template.format(number=clean, digits=clean.lstrip("+"))

    async def send(self, notification: Notify, subject: str, text: str) -> None:
        to = self.gateway_address(notification.address)
        await self._send(generated_message(self.runtime.policy, to, subject, text[:600]))


class EmailChannel:
    """A short notice to another mail address (``medium = "email"``)."""

    medium = "email"

    def __init__(self, runtime: Runtime, send: MailSender | None = None) -> None:
        self.runtime = runtime
        self._send = send or delivery_sender(runtime)

    async def send(self, notification: Notify, subject: str, text: str) -> None:
        address = one_line(notification.address, 254)
        if "@" not in address or " " in address:
            raise ChannelError(f"not a mail address: {address!r}")
        await self._send(generated_message(self.runtime.policy, address, subject, text))


class WebhookChannel:
    """JSON POST to ``channels.webhook_url`` (or the address, when it is a URL)."""

    medium = "webhook"
    attempts = 3

    def __init__(self, runtime: Runtime, backoff: float = 0.5) -> None:
        self.runtime = runtime
        self.backoff = backoff

    def _url(self, notification: Notify) -> str:
        for url in (notification.address, self.runtime.policy.channels.webhook_url or ""):
            if url.startswith(("https://", "http://")):
                return url
        raise ChannelError("channels.webhook_url is not set in the policy: webhook cannot be sent")

    async def send(self, notification: Notify, subject: str, text: str) -> None:
        url = self._url(notification)
        body = json.dumps(
            {"user": notification.user, "medium": notification.medium, "subject": subject,
             "text": text, "why": notification.why},
            ensure_ascii=False,
        ).encode()
        timeout = float(self.runtime.policy.channels.webhook_timeout)
        loop = asyncio.get_running_loop()
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                await loop.run_in_executor(None, _post, url, body, timeout)
                return
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code < 500:
                    break  # the receiver refused this request: retrying cannot help
            except OSError as exc:
                last = exc
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff * 2**attempt)
        raise ChannelError(f"webhook {_redacted(url)} failed: {last}")


def _redacted(url: str) -> str:
    """Scheme and host only: webhook tokens hide in the path (Slack, Teams), the query
    string or the user info, and none of them may reach a log or the audit file."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def _post(url: str, body: bytes, timeout: float) -> None:
    request = urllib.request.Request(  # noqa: S310 - scheme checked in _url
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "mailcall"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read(65536)


class FileChannel:
    """JSON lines appended to ``channels.file_path``: a medium for tests, and the audit trail.

    Records are appended with ``O_APPEND`` in as few ``write`` calls as
    possible: lines that arrive while a write is under way go out together in
    the next one, so a busy server does not pay a thread hand-off per line.
    """

    medium = "file"

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def path(self) -> str | None:
        return self.runtime.policy.channels.file_path

    async def audit(self, record: dict[str, Any]) -> None:
        path = self.path
        if not path:
            return
        line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode()
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.append((path, line, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_pending())
        await done

    async def _write_pending(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending, []
            by_path: dict[str, list[bytes]] = {}
            for path, line, _ in batch:
                by_path.setdefault(path, []).append(line)
            try:
                await loop.run_in_executor(None, _append, by_path)
            except Exception as exc:
                for _, _, done in batch:
                    if not done.done():
                        done.set_exception(ChannelError(f"cannot append to {path}: {exc}"))
                continue
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def send(self, notification: Notify, subject: str, text: str) -> None:
        if not self.path:
            raise ChannelError("channels.file_path is not set in the policy: file channel unusable")
        await self.audit({"event": "notification", "user": notification.user,
                          "address": notification.address, "subject": subject, "text": text})


def _append(by_path: dict[str, list[bytes]]) -> None:
    for path, lines in by_path.items():
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, b"".join(lines))
        finally:
            os.close(fd)


@hookimpl
def mailcall_notification_channels(runtime: Runtime) -> list[Any]:
    return [SmsGatewayChannel(runtime), EmailChannel(runtime), WebhookChannel(runtime),
            FileChannel(runtime)]


class NotificationService:
    """The notification dispatcher as a service: started first, stopped last.

    It is shared through ``runtime.notifier`` by the Sieve bridge (new mail) and
    the deposit worker (new voicemail and fax), so one rate limit and one
    de-duplication memory cover everything a user's mobile receives.
    """

    name = "notifications"

    def __init__(self, runtime: Runtime) -> None:
        from mailcall.sieve.notifications import Dispatcher

        channels = [c for batch in runtime.pm.hook.mailcall_notification_channels(
            runtime=runtime) for c in batch or ()]
        self.dispatcher = Dispatcher(runtime, channels)
        runtime.notifier = self.dispatcher

    async def start(self) -> None:
        await self.dispatcher.start()

    async def stop(self, grace: float) -> None:
        await self.dispatcher.stop(grace)


@hookimpl(tryfirst=True)
def mailcall_services(runtime: Runtime) -> list[Any]:
    return [NotificationService(runtime)]
