"""Built-in plugin: the message-waiting lamp follows the voice folder (docs/mwi.md).

Offers the ``mwi`` service (only when mwi.toml exists: beside the policy, or
``$MAILCALL_MWI_CONFIG``) and the ``mailcall mwi status|sync`` commands. While
the service runs it answers the hooks that need a running lamp (a deposit
delivered, the phone menu's changes, the counts): :mod:`mailcall.mwi.running`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.service_files import service_from_file
from mailcall.mwi import commands
from mailcall.mwi.config import MwiConfigError, config_path, load

log = logging.getLogger("mailcall.mwi")


@hookimpl
def mailcall_services(runtime: Any) -> list[Any]:
    def make(settings: Any) -> Any:
        from mailcall.mwi.service import MwiService

        return MwiService(runtime, settings)

    return service_from_file(
        "mwi", config_path(runtime.policy_path), log=log,
        off="message-waiting lamps are off (no mwi.toml beside the policy, no "
            "$MAILCALL_MWI_CONFIG; docs/mwi.md)",
        load=lambda path: load(path, voice_folder=runtime.policy.mail.voice_folder),
        error=MwiConfigError, make=make)


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    commands.register(subparsers)
