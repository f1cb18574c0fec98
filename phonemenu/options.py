"""The mailbox options (0): record the greetings the profile allows (and use them again
if the user had turned them off), change the PIN (5), set or end an absence (3).

A greeting is recorded, and which kinds may be recorded decided (turned on again in
the user store if the user had turned it off), by :mod:`mailcall.agi.greeting_recording`,
the one sequence and rule the greeting script uses too, so a hang-up or an empty
recording leaves the old greeting in place. The PIN and the absence are
the user's own settings, written to the user store by their dialogs
(:mod:`.pin_by_phone`, :mod:`.absence_by_phone`), as the web page and the CLI
write them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailcall.agi import greeting_recording, prompts
from mailcall.userstore import by_phone

from . import absence_by_phone, pin_by_phone

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")


async def record_greeting(call: MenuCall, kind: str) -> None:
    user = call.user
    if not greeting_recording.may_record(call.runtime, user.id, kind):
        await call.saying.stream(prompts.INVALID_CHOICE)
        return
    session = call.session
    saved = await greeting_recording.record_greeting(
        session, call.runtime.setting("greetings_dir"), user.id, kind)
    if not saved:
        if not session.hungup:
            await call.saying.phrase("not_sent")
        return
    log.info("phone menu: greeting %s of %s replaced", kind, user.id)
    await greeting_recording.use_again(call.runtime, user.id, kind, origin=by_phone.ORIGIN)
    await call.saying.stream(prompts.SAVED)


async def change_setting(call: MenuCall, what: str) -> None:
    """The dialog of one of the caller's own settings: ``pin`` or ``absence``."""
    if what == "pin":
        await pin_by_phone.change_pin(call)
    elif what == "absence":
        await absence_by_phone.set_absence(call)
    else:
        raise AssertionError(f"no dialog for the setting {what!r}")


__all__ = ["change_setting", "record_greeting"]
