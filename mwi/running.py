"""The hooks the lamp answers while its service runs, registered on the plugin manager.

Registered by :meth:`MwiService.start` and unregistered by ``stop``: without a
running lamp (no mwi.toml, or ``mailcall serve`` not started) nobody answers
``mailcall_voice_counts`` and deposits or phone-menu changes recount nothing,
with no attribute probing of the runtime. Every hook first checks that it is
called for this lamp's runtime: tests and tools may run several side by side.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from mailcall.core.contracts import VoiceCounts
from mailcall.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from .service import MwiService

log = logging.getLogger("mailcall.mwi")


class LampHooks:
    def __init__(self, service: MwiService) -> None:
        self.service = service

    @hookimpl
    def mailcall_deposit_delivered(self, runtime: Any, deposit: Any, plan: Any,
                                   message_id: str) -> None:
        if runtime is not self.service.runtime or plan.kind != "voice":
            return
        try:
            self.service.poke(plan.mailbox)
        except Exception:
            log.exception("mwi: recounting %s after a deposit failed", plan.mailbox)

    @hookimpl
    def mailcall_mailbox_changed(self, runtime: Any, user: str, folder: str,
                                 reason: str) -> None:
        # mailcall's own changes do not go through Dovecot's IMAPSieve trigger reliably
        # (the phone menu may use another IMAP path, or none is configured): recount now.
        if runtime is not self.service.runtime or not is_voice_folder(
                folder, self.service.settings.imap.folder):
            return
        try:
            self.service.poke(user)
        except Exception:
            log.exception("mwi: recounting %s after the phone menu's %r in %s failed", user,
                          reason, folder)

    @hookimpl
    def mailcall_voice_counts(self, runtime: Any, user: str
                              ) -> Awaitable[VoiceCounts | None] | None:
        if runtime is not self.service.runtime or not self.service.watches(user):
            return None
        try:
            if asyncio.get_running_loop() is not self.service.loop:
                return None  # another thread's loop cannot wait on this lamp's counts
        except RuntimeError:
            return None
        return self.service.settled_counts(user)


def is_voice_folder(folder: str, voice_folder: str) -> bool:
    # RFC 3501: INBOX is case-insensitive, every other name is exact.
    if voice_folder.upper() == "INBOX":
        return folder.upper() == "INBOX"
    return folder == voice_folder
