"""Built-in notification channels: e-mail-to-SMS gateway, e-mail, HTTP webhook, JSON-lines file.

Each medium is declared (:data:`BUILTIN_MEDIA`: its ``[channels.<medium>]``
settings and where a user's address comes from) exactly as a third-party
plugin declares its own, and the policy compiler validates it from that.
Each channel is created per runtime (no module state) and reads the policy at
send time, so a reloaded policy's gateway, relay or URL applies to the next
message. ``send`` raises on failure, temporary or permanent (see
:mod:`.channel`); the dispatcher decides what to log, retry, rate-limit and
de-duplicate.

Why the standard library for HTTP: a webhook is one small JSON POST with a
timeout and two quick retries; ``urllib.request`` run in the loop's executor
does that without adding a dependency to every installation (aiohttp and
httpx are not installed by default and bring a dozen packages with them).
"""

from __future__ import annotations

import asyncio
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, ClassVar

from mailcall.core.contracts import FromSetting, Medium, Setting, UserField
from mailcall.core.decisions.plans import Notify
from mailcall.core.host.runtime import Runtime
from mailcall.core.text import display_text

from .channel import ChannelError, PermanentChannelError, TemporaryChannelError
from .relay import MailSender, generated_message, one_line, relay_sender

SMS_LIMIT = 600


def _gateway_problem(template: str) -> str | None:
    if "{number}" not in template or "@" not in template:
        return (f"'{template}' must be an address template with {{number}}, "
                "e.g. {number}@sms.example.net")
    try:
        template.format(number="+33612345678", digits="33612345678")
    except (KeyError, IndexError, ValueError) as exc:
        return (f"'{template}' is not a template mailcall can fill ({exc!r}): only {{number}} "
                "and {digits} may appear in braces")
    return None


BUILTIN_MEDIA: tuple[Medium, ...] = (
    Medium("sms", address=UserField("mobile"), settings=(
        Setting("gateway", required=True, validate=_gateway_problem,
                help="address template of the operator's e-mail-to-SMS gateway"),),
        description="SMS through an e-mail-to-SMS gateway, sent through [channels] relay"),
    Medium("webhook", address=FromSetting("url"), settings=(
        Setting("url", kind="url", help="where the JSON notification is POSTed"),
        Setting("timeout", kind="number", default=3.0, low=0.1, high=60,
                help="seconds one POST may take")),
        description="a JSON POST to one URL for every user"),
    Medium("file", address=FromSetting("path"), settings=(
        Setting("path", help="JSON-lines file notifications (and the audit trail) go to"),),
        description="JSON lines appended to a file: tests, and the audit trail"),
    Medium("email", address=UserField("email"),
           description="a short notice to the user's own address, through [channels] relay"),
)


class SmsGatewayChannel:
    """SMS through the operator's e-mail-to-SMS gateway (``[channels.sms] gateway`` template),
    sent through ``[channels] relay``.

    The template may use ``{number}`` (E.164, "+33612345678") or ``{digits}``
    ("33612345678").
    """

    medium = "sms"
    temporary_errors: ClassVar[tuple[type[BaseException], ...]] = (TemporaryChannelError,)

    def __init__(self, runtime: Runtime, send: MailSender | None = None) -> None:
        self.runtime = runtime
        self._send = send or relay_sender(runtime)

    def gateway_address(self, number: str) -> str:
        template = self.runtime.policy.channels.of("sms").get("gateway")
        if not template:
            raise PermanentChannelError(
                "channels.sms_gateway is not set in the policy: SMS cannot be sent")
        clean = "".join(ch for ch in number if ch.isdigit() or ch == "+")
        if not clean.lstrip("+"):
            raise PermanentChannelError(f"not a phone number: {number!r}")
        return template.format(number=clean, digits=clean.lstrip("+"))

    async def send(self, notification: Notify, subject: str, text: str) -> str | None:
        to = self.gateway_address(notification.address)
        message = generated_message(self.runtime.policy, to, subject,
                                    display_text(text, SMS_LIMIT, lines=True))
        return await self._send(message)


class EmailChannel:
    """A short notice to another mail address (``medium = "email"``), through the relay."""

    medium = "email"
    temporary_errors: ClassVar[tuple[type[BaseException], ...]] = (TemporaryChannelError,)

    def __init__(self, runtime: Runtime, send: MailSender | None = None) -> None:
        self.runtime = runtime
        self._send = send or relay_sender(runtime)

    async def send(self, notification: Notify, subject: str, text: str) -> str | None:
        address = one_line(notification.address, 254)
        if "@" not in address or " " in address:
            raise PermanentChannelError(f"not a mail address: {address!r}")
        message = generated_message(self.runtime.policy, address, subject,
                                    display_text(text, lines=True))
        return await self._send(message)


class WebhookChannel:
    """JSON POST to ``[channels.webhook] url`` (or the address, when it is a URL).

    Two quick retries inside one attempt ride out a receiver restarting; past
    them a 5xx, a timeout or a refused connection is temporary (the dispatcher
    retries later), a 4xx permanent (the receiver refused this request).
    """

    medium = "webhook"
    attempts = 3
    temporary_errors: ClassVar[tuple[type[BaseException], ...]] = (TemporaryChannelError,)

    def __init__(self, runtime: Runtime, backoff: float = 0.5) -> None:
        self.runtime = runtime
        self.backoff = backoff

    def _url(self, notification: Notify) -> str:
        configured = self.runtime.policy.channels.of("webhook").get("url", "")
        for url in (notification.address, configured):
            if url.startswith(("https://", "http://")):
                return url
        raise PermanentChannelError(
            "channels.webhook_url is not set in the policy: webhook cannot be sent")

    async def send(self, notification: Notify, subject: str, text: str) -> str | None:
        url = self._url(notification)
        body = json.dumps(
            {"user": notification.user, "medium": notification.medium, "subject": subject,
             "text": text, "why": notification.why},
            ensure_ascii=False,
        ).encode()
        timeout = float(self.runtime.policy.channels.of("webhook").get("timeout", 3.0))
        loop = asyncio.get_running_loop()
        last: Exception | None = None
        for attempt in range(self.attempts):
            try:
                status = await loop.run_in_executor(None, _post, url, body, timeout)
                return f"webhook {_redacted(url)} answered {status}"
            except urllib.error.HTTPError as exc:
                last = exc
                if exc.code < 500:
                    raise PermanentChannelError(
                        f"webhook {_redacted(url)} refused the request: HTTP {exc.code}; "
                        "check the receiver's configuration") from None
            except OSError as exc:  # refused, reset, DNS, timeout
                last = exc
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.backoff * 2**attempt)
        raise TemporaryChannelError(f"webhook {_redacted(url)} failed: {_described(last)}")


def _described(exc: Exception | None) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"  # not str(exc): it may carry the URL
    if isinstance(exc, urllib.error.URLError):
        return display_text(str(exc.reason), 200)
    return display_text(f"{type(exc).__name__}: {exc}", 200)


def _redacted(url: str) -> str:
    """Scheme and host only: webhook tokens hide in the path (Slack, Teams), the query
    string or the user info, and none of them may reach a log or the audit file."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}/…"


def _post(url: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(  # noqa: S310 - scheme checked in _url
        url, data=body, method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "mailcall"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        response.read(65536)
        return int(response.status)


class FileChannel:
    """JSON lines appended to ``[channels.file] path``: a medium for tests, and the audit trail.

    Records are appended with ``O_APPEND`` in as few ``write`` calls as
    possible: lines that arrive while a write is under way go out together in
    the next one, so a busy server does not pay a thread hand-off per line.
    """

    medium = "file"
    temporary_errors: ClassVar[tuple[type[BaseException], ...]] = (TemporaryChannelError,)

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._pending: list[tuple[str, bytes, asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    @property
    def path(self) -> str | None:
        return self.runtime.policy.channels.of("file").get("path")

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
                        done.set_exception(ChannelError(
                            f"cannot append to {', '.join(by_path)}: {exc}"))
                continue
            for _, _, done in batch:
                if not done.done():
                    done.set_result(None)

    async def send(self, notification: Notify, subject: str, text: str) -> str | None:
        if not self.path:
            raise PermanentChannelError(
                "channels.file_path is not set in the policy: file channel unusable")
        await self.audit({"event": "notification", "user": notification.user,
                          "address": notification.address, "subject": subject, "text": text})
        return f"appended to {self.path}"


def _append(by_path: dict[str, list[bytes]]) -> None:
    for path, lines in by_path.items():
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, b"".join(lines))
        finally:
            os.close(fd)


def builtin_channels(runtime: Runtime) -> list[Any]:
    return [SmsGatewayChannel(runtime), EmailChannel(runtime), WebhookChannel(runtime),
            FileChannel(runtime)]
