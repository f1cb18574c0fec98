"""The contract of a notification channel, and how its failures are read.

A channel (built in, or offered by a plugin through
``mailcall_notification_channels``) says which medium it serves, sends one
notification, and raises when it cannot. Whether the dispatcher tries again
depends on the exception: a temporary failure (the relay answers 4xx or is
down, a webhook answers 5xx or times out) is retried with backoff from the
durable queue; anything else is permanent (a 5xx from the relay, an HTTP 4xx,
an address that is not one) and is reported once, because sending the same
thing again cannot succeed. A channel names its temporary exception types in
``temporary_errors``; :class:`TemporaryChannelError` and
:class:`PermanentChannelError` say it explicitly whatever the channel declares.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mailcall.core.decisions.plans import Notify


class ChannelError(Exception):
    """A notification could not be handed over; the message says where and why.

    Permanent unless the channel lists it in ``temporary_errors``.
    """


class TemporaryChannelError(ChannelError):
    """Worth trying again later: the peer is down, busy or answered "try again"."""


class PermanentChannelError(ChannelError):
    """Sending the same notification again cannot succeed: reported once, not retried."""


DEFAULT_TEMPORARY: tuple[type[BaseException], ...] = (
    TemporaryChannelError, TimeoutError, ConnectionError)
"""What a channel that declares no ``temporary_errors`` has retried."""


@runtime_checkable
class Channel(Protocol):
    """One way to reach a user: SMS gateway, webhook, e-mail, ...

    ``temporary_errors`` (optional, default :data:`DEFAULT_TEMPORARY`) are
    the exception types ``send`` raises for a failure worth retrying.
    ``send`` may return a short receipt (what the peer answered), which the
    success log line quotes.
    """

    medium: str

    async def send(self, notification: Notify, subject: str, text: str) -> str | None: ...


@runtime_checkable
class Auditor(Protocol):
    """A channel that also keeps the audit trail (one JSON record per outcome)."""

    async def audit(self, record: dict[str, Any]) -> None: ...


def is_temporary(channel: object, exc: BaseException) -> bool:
    """True when `exc`, raised by `channel`'s ``send``, is worth a retry."""
    if isinstance(exc, PermanentChannelError):
        return False
    if isinstance(exc, TemporaryChannelError | TimeoutError):
        return True
    declared = getattr(channel, "temporary_errors", DEFAULT_TEMPORARY)
    return isinstance(exc, tuple(declared))
