"""The built-in FastAGI plugin: the AGI server service and the four standard scripts."""

from __future__ import annotations

from typing import Any

from mailcall.agi.handlers import fax, greeting, route, voicemail
from mailcall.agi.pin_guard import shared_guard
from mailcall.agi.service import AgiService
from mailcall.core.contracts import Service
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.collect import call_rules


@hookimpl
def mailcall_agi_handlers(runtime: Any) -> dict[str, Any]:
    rules = None if runtime is None else call_rules(runtime.pm)
    return {
        "route": route.make_handler(rules),
        "voicemail": voicemail.handler,
        "fax": fax.handler,
        "greeting": greeting.make_handler(shared_guard(runtime)),
    }


@hookimpl
def mailcall_services(runtime: Any) -> list[Service]:
    return [AgiService(runtime)]
