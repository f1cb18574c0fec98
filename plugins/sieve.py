"""The Dovecot side as a plugin: the Sieve bridge service, the per-user auto-reply scripts kept
current with the user store, and the ``mailcall sieve`` commands."""

from __future__ import annotations

import argparse

from mailcall.core.contracts import Service
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.runtime import Runtime


@hookimpl
def mailcall_services(runtime: Runtime) -> list[Service]:
    from mailcall.sieve.user_scripts import UserScriptsService

    # The users' own absences (user store) become auto-replies in their scripts.
    scripts: list[Service] = [UserScriptsService(runtime)]
    path = runtime.setting("sieve_socket")
    if not path:
        return scripts
    from mailcall.sieve.bridge import SieveBridge

    timeout = runtime.overrides.get("sieve_answer_timeout")
    return [SieveBridge(runtime, path, answer_timeout=float(timeout) if timeout else None),
            *scripts]


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    from mailcall.sieve.commands import register

    register(subparsers)
