"""Built-in plugin: the employees' page (docs/web.md).

Offers the ``web`` service only when web.toml exists (beside the policy, or
``$MAILCALL_WEB_CONFIG``); otherwise ``mailcall serve`` says once that the page
is off. A web.toml that cannot be used stops ``serve`` with the file and key.
"""

from __future__ import annotations

import logging
from typing import Any

from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.service_files import service_from_file
from mailcall.web.config import WebConfigError, config_path, load

log = logging.getLogger("mailcall.web")


@hookimpl
def mailcall_services(runtime: Any) -> list[Any]:
    def make(settings: Any) -> Any:
        from mailcall.web.service import WebService

        return WebService(runtime, settings)

    return service_from_file(
        "web", config_path(runtime.policy_path), log=log,
        off="the employees' page is off (no web.toml beside the policy, no "
            "$MAILCALL_WEB_CONFIG; docs/web.md)",
        load=lambda path: load(path, users=runtime.policy.users),
        error=WebConfigError, make=make)
