"""Built-in plugin: the notification media, their channels and the notification service.

Wires :mod:`mailcall.notifications` to the hooks: the built-in media
(e-mail-to-SMS gateway, e-mail, webhook, JSON-lines file) are declared through
``mailcall_notification_media`` and their channels offered through
``mailcall_notification_channels``, like any plugin's; the
:class:`~mailcall.notifications.Dispatcher` built from every plugin's channels
is a ``mailcall serve`` service, started first and stopped last, and set as
``runtime.notifier`` for the Sieve bridge and the deposit worker.
"""

from __future__ import annotations

import logging

from mailcall.core.contracts import Channel, Medium
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.collect import collected, collected_by_name
from mailcall.core.host.runtime import Runtime
from mailcall.notifications import Dispatcher, queue_path
from mailcall.notifications.channel import temporary_errors_problem
from mailcall.notifications.channels import BUILTIN_MEDIA, builtin_channels

log = logging.getLogger("mailcall.notifications")


@hookimpl
def mailcall_notification_media() -> list[Medium]:
    return list(BUILTIN_MEDIA)


@hookimpl
def mailcall_notification_channels(runtime: Runtime) -> list[Channel]:
    return builtin_channels(runtime)


def notification_service(runtime: Runtime) -> Dispatcher:
    """The dispatcher over every plugin's channels, its queue beside the spool.

    A channel object that is not a :class:`~mailcall.core.contracts.Channel`, or whose
    ``temporary_errors`` is not a tuple of exception classes, stops ``serve`` with a
    message naming its plugin; one whose medium no plugin declares is logged (no policy
    can name that medium, so it would never be used). For a medium two plugins serve,
    the one called first wins (``collected_by_name``: a third-party channel overrides ours).
    """
    declared = {m.name for m in collected(runtime.pm, "mailcall_notification_media", Medium)}
    channels = collected_by_name(
        runtime.pm, "mailcall_notification_channels", Channel, name="medium",
        what="notification channel for medium", check=temporary_errors_problem,
        expected="a Channel (medium: str, async send(notification, subject, text); "
                 "temporary_errors, if any, a tuple of exception classes)", runtime=runtime)
    for medium in channels:
        if medium not in declared:
            log.warning("a channel for medium %r is offered but no plugin declares that "
                        "medium (mailcall_notification_media): no policy can use it", medium)
    dispatcher = Dispatcher(runtime, channels.values(),
                            path=queue_path(runtime.setting("spool_dir")))
    runtime.notifier = dispatcher
    return dispatcher


@hookimpl(tryfirst=True)
def mailcall_services(runtime: Runtime) -> list[Dispatcher]:
    return [notification_service(runtime)]
