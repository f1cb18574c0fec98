"""The contract of a notification channel, and how its failures are read.

A channel (built in, or offered by a plugin through
``mailcall_notification_channels``; its types, :class:`Channel` and
:class:`RetryingChannel`, live with every hook contract in
:mod:`mailcall.core.contracts`) says which medium it serves, sends one
notification, and raises when it cannot. Whether the dispatcher tries again
depends on the exception: a temporary failure (the relay answers 4xx or is
down, a webhook answers 5xx or times out) is retried with backoff from the
durable queue; anything else is permanent (a 5xx from the relay, an HTTP 4xx,
an address that is not one) and is reported once, because sending the same
thing again cannot succeed. A :class:`RetryingChannel` names its temporary exception types in
``temporary_errors``; :class:`TemporaryChannelError` and
:class:`PermanentChannelError` say it explicitly whatever the channel declares.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mailcall.core.contracts import Channel, RetryingChannel

__all__ = ["DEFAULT_TEMPORARY", "Auditor", "Channel", "ChannelError", "PermanentChannelError",
           "RetryingChannel", "TemporaryChannelError", "is_temporary"]


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
class Auditor(Protocol):
    """A channel that also keeps the audit trail (one JSON record per outcome)."""

    async def audit(self, record: dict[str, Any]) -> None: ...


def is_temporary(channel: object, exc: BaseException) -> bool:
    """True when `exc`, raised by `channel`'s ``send``, is worth a retry."""
    if isinstance(exc, PermanentChannelError):
        return False
    if isinstance(exc, TemporaryChannelError | TimeoutError):
        return True
    declared = (channel.temporary_errors if isinstance(channel, RetryingChannel)
                else DEFAULT_TEMPORARY)
    return isinstance(exc, tuple(declared))
