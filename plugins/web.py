"""Built-in plugin: the employees' page (docs/web.md).

Offers the ``web`` service only when web.toml exists (beside the policy, or
``$MAILCALL_WEB_CONFIG``); otherwise ``mailcall serve`` says once that the page
is off. A web.toml that cannot be used stops ``serve`` with the file and key.
"""

from __future__ import annotations

import logging
from typing import Any

from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.unusable import UnusableService
from mailcall.web.config import WebConfigError, config_path, load

log = logging.getLogger("mailcall.web")


@hookimpl
def mailcall_services(runtime: Any) -> list[Any]:
    path = config_path(runtime.policy_path)
    if path is None:
        log.info("web: the employees' page is off (no web.toml beside the policy, "
                 "no $MAILCALL_WEB_CONFIG; docs/web.md)")
        return []
    try:
        settings = load(path, users=runtime.policy.users)
    except WebConfigError as exc:
        return [UnusableService("web", str(exc))]
    from mailcall.web.service import WebService

    return [WebService(runtime, settings)]
