"""The mailbox options (0): record the greetings the profile allows (and use them again
if the user had turned them off), change the PIN (5), set or end an absence (3).

A greeting is recorded under a temporary name and renamed over the old one by
the functions the greeting menu uses too (:mod:`mailcall.agi.folders`), so a
hang-up or an empty recording leaves the old greeting in place. The PIN and the absence are
the user's own settings, written to the user store by their dialogs
(:mod:`.pin_by_phone`, :mod:`.absence_by_phone`), as the web page and the CLI
write them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mailcall.agi import greeting_recording, prompts
from mailcall.userstore.errors import RefinementRefused, StoreError
from mailcall.userstore.overlay import decision_policy
from mailcall.userstore.service import UserStore

from . import absence_by_phone, own_store, pin_by_phone

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")


async def record_greeting(call: MenuCall, kind: str) -> None:
    user = call.user
    ceiling = call.runtime.policy.users.get(user.id)
    if ceiling is None or kind not in ceiling.features.greetings:
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
    refined = decision_policy(call.runtime).users.get(user.id)
    if refined is not None and kind not in refined.features.greetings:
        await _use_greeting(call, kind)
    await call.saying.stream(prompts.SAVED)


async def _use_greeting(call: MenuCall, kind: str) -> None:
    """The caller turned this greeting off (page, CLI): recording it by phone turns it on again.

    A greeting recorded and then never played would be a surprise; the choice of
    greetings is a setting of the user store (``greetings``), so it is written there,
    audited as a phone change, like the PIN and the absence."""
    user = call.user
    policy = call.runtime.policy

    def write(store: UserStore) -> None:
        stored = store.refinements(user.id).values.get("greetings")
        if stored is None or kind in stored.value:
            return
        store.set(policy, user.id, {"greetings": [*stored.value, kind]}, actor=user.id,
                  origin=own_store.ORIGIN)

    try:
        await own_store.in_store(call.runtime, write)
    except (RefinementRefused, StoreError) as exc:
        log.warning("phone menu: %s recorded their %s greeting, which stays unused: the "
                    "user store refused to turn it on: %s", user.id, kind, exc)
        return
    own_store.obeyed_now(call.runtime)
    log.info("phone menu: %s's %s greeting is used again (set by phone in the user store)",
             user.id, kind)


async def change_setting(call: MenuCall, what: str) -> None:
    """The dialog of one of the caller's own settings: ``pin`` or ``absence``."""
    if what == "pin":
        await pin_by_phone.change_pin(call)
    elif what == "absence":
        await absence_by_phone.set_absence(call)
    else:
        raise AssertionError(f"no dialog for the setting {what!r}")


__all__ = ["change_setting", "record_greeting"]
