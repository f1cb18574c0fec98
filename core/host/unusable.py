"""A service whose configuration file is wrong: ``mailcall serve`` stops with the reason.

Returned from ``mailcall_services`` instead of the real service when its own
file (mwi.toml, web.toml, ...) cannot be used, so that serve prints the plugin's
one-line reason (file, table, key) rather than a traceback, and starts nothing.
"""

from __future__ import annotations

from mailcall.core.errors import ServiceStartError


class UnusableService:
    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason

    async def start(self) -> None:
        raise ServiceStartError(self.reason)

    async def stop(self, grace: float) -> None:
        return None
