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
``temporary_errors``, checked when the channel is collected (a tuple of exception
classes); :class:`TemporaryChannelError` and
:class:`PermanentChannelError` say it explicitly whatever the channel declares.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from mailcall.core.contracts import Channel, RetryingChannel
from mailcall.core.text import display_text

__all__ = ["DEFAULT_TEMPORARY", "Auditor", "Channel", "ChannelError", "PermanentChannelError",
           "RetryingChannel", "TemporaryChannelError", "is_temporary", "temporary_errors_of",
           "temporary_errors_problem"]


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


def temporary_errors_problem(channel: object) -> str | None:
    """What is wrong with `channel`'s ``temporary_errors`` (shown naming its plugin where
    channels are collected), or None: absent, or a tuple of exception classes.

    Checked once, before any notification, so that ``("ConnectionError",)`` (names, not
    classes) or a bare class is refused at start-up rather than raising inside the
    failure handling of a send, where the notification would be lost.
    """
    declared = getattr(channel, "temporary_errors", _ABSENT)
    if declared is _ABSENT:
        return None
    if isinstance(declared, tuple) and all(
            isinstance(kind, type) and issubclass(kind, BaseException) for kind in declared):
        return None
    return (f"a {type(channel).__name__} whose temporary_errors is "
            f"{display_text(repr(declared), 120)}, not a tuple of exception classes "
            "(such as (ConnectionError, MyGatewayBusy))")


def temporary_errors_of(channel: object) -> tuple[type[BaseException], ...]:
    """The exception types retried for `channel`: its checked ``temporary_errors``, or
    :data:`DEFAULT_TEMPORARY` when it declares none; TypeError says what is wrong."""
    wrong = temporary_errors_problem(channel)
    if wrong is not None:
        raise TypeError(f"notification channel for medium {getattr(channel, 'medium', '?')!r}:"
                        f" {wrong}")
    return getattr(channel, "temporary_errors", DEFAULT_TEMPORARY)


def is_temporary(temporary: tuple[type[BaseException], ...], exc: BaseException) -> bool:
    """True when `exc`, raised by a channel's ``send``, is worth a retry; `temporary` is
    that channel's :func:`temporary_errors_of`, read when the channel was taken."""
    if isinstance(exc, PermanentChannelError):
        return False
    if isinstance(exc, TemporaryChannelError | TimeoutError):
        return True
    return isinstance(exc, temporary)


_ABSENT = object()
