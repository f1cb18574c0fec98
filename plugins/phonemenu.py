"""Built-in plugin: the ``mailbox`` FastAGI script, mailbox by phone (docs/phone-menu.md).

Everything one server process shares between menu calls is made here, once:
the mail store (IMAP connections bounded process-wide), the speaker (one
speech engine), the audio decoder, and the PIN guard the greeting menu uses
too, so wrong PINs count once across both menus.

A missing piece never stops ``mailcall serve``: without a speech engine the
menu says its stock prompts only (and says it cannot read mail), without a
usable phone-menu.toml every caller hears an apology after the PIN; both are
logged at start with what to do.
"""

from __future__ import annotations

import logging
from typing import Any

from mailcall.agi.pin_guard import shared_guard
from mailcall.core.hookspecs import hookimpl
from mailcall.phonemenu.config import PhoneMenuConfigError, config_path, mailstore_settings
from mailcall.phonemenu.handler import make_handler
from mailcall.phonemenu.services import Services

log = logging.getLogger("mailcall.phonemenu")


def build_services(runtime: Any) -> Services:
    from mailcall.deposit.seal import deposit_key
    from mailcall.mailstore import (
        MailboxUnavailable,
        MailStore,
        MailstoreSettings,
        MessageUnreadable,
    )
    from mailcall.playback import UnplayableAudio, decode_to_sln
    from mailcall.speech import Speaker, SpeechError, SpeechUnavailable

    speaker = None
    store = None
    if runtime is not None:
        try:
            speaker = Speaker.from_plugins(runtime.pm)
        except SpeechUnavailable as exc:
            log.warning("phone menu: no speech engine (%s): callers hear stock prompts only "
                        "and e-mail cannot be read to them", exc)
        try:
            settings = mailstore_settings(MailstoreSettings, runtime.policy,
                                          config_path(runtime.policy_path))
        except PhoneMenuConfigError as exc:
            log.error("phone menu: %s. Callers of the mailbox menu hear an apology after "
                      "their PIN until this is fixed", exc)
        else:
            spool = runtime.setting("spool_dir")
            store = MailStore(settings, key=lambda: deposit_key(spool))
    return Services(store=store, speaker=speaker, decode=decode_to_sln,
                    guard=shared_guard(runtime),
                    unavailable=(MailboxUnavailable, SpeechError),
                    unreadable=(MessageUnreadable, UnplayableAudio))


@hookimpl
def mailcall_agi_handlers(runtime: Any) -> dict[str, Any]:
    return {"mailbox": make_handler(build_services(runtime))}


__all__ = ["build_services", "mailcall_agi_handlers"]
