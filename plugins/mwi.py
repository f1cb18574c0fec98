"""Built-in plugin: the message-waiting lamp follows the voice folder (docs/mwi.md).

Offers the ``mwi`` service (only when mwi.toml exists: beside the policy, or
``$MAILCALL_MWI_CONFIG``), the ``mailcall mwi status|sync`` commands, and
recounts a user's lamp when one of their deposits is delivered or when mailcall
itself changed their voice folder (the phone menu: heard, deleted).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from mailcall.core.errors import ServiceStartError
from mailcall.core.hookspecs import hookimpl
from mailcall.mwi import commands
from mailcall.mwi.config import MwiConfigError, config_path, load

log = logging.getLogger("mailcall.mwi")


class _Unusable:
    """Stands for the lamp when mwi.toml is wrong: serve stops with the reason, no traceback."""

    name = "mwi"

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def start(self) -> None:
        raise ServiceStartError(self.reason)

    async def stop(self, grace: float) -> None:
        return None


@hookimpl
def mailcall_services(runtime: Any) -> list[Any]:
    path = config_path(runtime.policy_path)
    if path is None:
        log.info("mwi: message-waiting lamps are off (no mwi.toml beside the policy, "
                 "no $MAILCALL_MWI_CONFIG; docs/mwi.md)")
        return []
    try:
        settings = load(path, voice_folder=runtime.policy.mail.voice_folder)
    except MwiConfigError as exc:
        return [_Unusable(str(exc))]
    from mailcall.mwi.service import MwiService

    return [MwiService(runtime, settings)]


@hookimpl
def mailcall_deposit_delivered(runtime: Any, deposit: Any, plan: Any, message_id: str) -> None:
    lamp = getattr(runtime, "mwi", None)
    if lamp is None or getattr(plan, "kind", None) != "voice":
        return
    try:
        lamp.poke(plan.mailbox)
    except Exception:
        log.exception("mwi: recounting %s after a deposit failed", plan.mailbox)


@hookimpl
def mailcall_mailbox_changed(runtime: Any, user: str, folder: str, reason: str) -> None:
    # mailcall's own changes do not go through Dovecot's IMAPSieve trigger reliably (the
    # phone menu may use another IMAP path, or none is configured): recount at once.
    lamp = getattr(runtime, "mwi", None)
    if lamp is None or not _is_voice_folder(folder, lamp.settings.imap.folder):
        return
    try:
        lamp.poke(user)
    except Exception:
        log.exception("mwi: recounting %s after the phone menu's %r in %s failed", user,
                      reason, folder)


def _is_voice_folder(folder: str, voice_folder: str) -> bool:
    # RFC 3501: INBOX is case-insensitive, every other name is exact.
    if voice_folder.upper() == "INBOX":
        return folder.upper() == "INBOX"
    return folder == voice_folder


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    commands.register(subparsers)
