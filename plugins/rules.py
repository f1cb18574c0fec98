"""Built-in plugin: the call routing rules, offered through the same hook as third-party rules."""

from __future__ import annotations

from mailcall.core.contracts import CallRule
from mailcall.core.decisions.rules import default_rules
from mailcall.core.hookspecs import hookimpl


@hookimpl
def mailcall_call_rules() -> list[CallRule]:
    return list(default_rules())
