"""The Dovecot side as a plugin: the Sieve bridge service and the ``mailcall sieve`` commands."""

from __future__ import annotations

import argparse

from mailcall.core.contracts import Service
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.runtime import Runtime


@hookimpl
def mailcall_services(runtime: Runtime) -> list[Service]:
    path = runtime.setting("sieve_socket")
    if not path:
        return []
    from mailcall.sieve.bridge import SieveBridge

    timeout = runtime.overrides.get("sieve_answer_timeout")
    return [SieveBridge(runtime, path, answer_timeout=float(timeout) if timeout else None)]


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    from mailcall.sieve.commands import register

    register(subparsers)
