"""The Dovecot side as a plugin: the Sieve bridge service, the per-user auto-reply scripts kept
current with the user store, and the ``mailcall sieve`` commands."""

from __future__ import annotations

import argparse
import weakref
from typing import TYPE_CHECKING

from mailcall.core.contracts import Service
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.runtime import Runtime

if TYPE_CHECKING:
    from mailcall.sieve.user_scripts import UserScriptsService

_SCRIPTS: weakref.WeakKeyDictionary[Runtime, UserScriptsService] = weakref.WeakKeyDictionary()
"""The auto-reply script service of each runtime (several runtimes can share a process)."""


@hookimpl
def mailcall_services(runtime: Runtime) -> list[Service]:
    from mailcall.sieve.user_scripts import UserScriptsService

    # The users' own absences (user store) become auto-replies in their scripts.
    _SCRIPTS[runtime] = service = UserScriptsService(runtime)
    scripts: list[Service] = [service]
    path = runtime.setting("sieve_socket")
    if not path:
        return scripts
    from mailcall.sieve.bridge import SieveBridge

    timeout = runtime.overrides.get("sieve_answer_timeout")
    return [SieveBridge(runtime, path, answer_timeout=float(timeout) if timeout else None),
            *scripts]


@hookimpl
def mailcall_user_settings_changed(runtime: Runtime, user_id: str,
                                   fields: frozenset[str]) -> None:
    """The user's auto-reply script follows their absences: rewrite it (off the loop)."""
    service = _SCRIPTS.get(runtime)
    if service is not None and service.active:
        service.changed(frozenset((user_id,)))


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    from mailcall.sieve.commands import register

    register(subparsers)
