"""Built-in plugin: the notification channels and the notification service.

Wires :mod:`mailcall.notifications` to the hooks: the built-in channels
(e-mail-to-SMS gateway, e-mail, webhook, JSON-lines file) are offered through
``mailcall_notification_channels`` like any plugin's, and the
:class:`~mailcall.notifications.Dispatcher` built from every plugin's channels
is a ``mailcall serve`` service, started first and stopped last, and set as
``runtime.notifier`` for the Sieve bridge and the deposit worker.
"""

from __future__ import annotations

from typing import Any

from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.runtime import Runtime
from mailcall.notifications import Dispatcher, queue_path
from mailcall.notifications.channels import builtin_channels


@hookimpl
def mailcall_notification_channels(runtime: Runtime) -> list[Any]:
    return builtin_channels(runtime)


def notification_service(runtime: Runtime) -> Dispatcher:
    """The dispatcher over every plugin's channels, its queue beside the spool."""
    channels = [c for batch in runtime.pm.hook.mailcall_notification_channels(
        runtime=runtime) for c in batch or ()]
    dispatcher = Dispatcher(runtime, channels, path=queue_path(runtime.setting("spool_dir")))
    runtime.notifier = dispatcher
    return dispatcher


@hookimpl(tryfirst=True)
def mailcall_services(runtime: Runtime) -> list[Any]:
    return [notification_service(runtime)]
