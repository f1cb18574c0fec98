"""``agi://host/mailbox[,ask]``: an employee calls in and hears their voicemail and e-mail.

The FastAGI script: the caller's language first (the phone's user, if the
policy binds the phone to one), then the login (:mod:`.entry`: PIN, shared
lockout), the profile's ``mailbox_by_phone``, and the menu itself
(:class:`~.call.MenuCall`). ``MAILCALL_STATUS`` afterwards is
``MAILBOX_DONE``, ``AUTH_FAILED`` or ``NOT_ALLOWED`` (docs/phone-menu.md). A
hang-up at any point stops everything: only messages whose audio was heard
were marked, and the call's scratch folder is removed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mailcall.agi import prompts
from mailcall.agi.driver import inline
from mailcall.agi.session import AgiHangup, AgiSession
from mailcall.core.policy.numbers import language_of

from .call import MenuCall
from .entry import bound_user, login
from .machine import Hangup
from .services import Services

log = logging.getLogger("mailcall.phonemenu")


def make_handler(services: Services) -> Callable[[AgiSession, Any], Awaitable[str]]:
    @inline
    def mailbox(session: AgiSession, runtime: Any) -> Awaitable[str]:
        return handler(session, runtime, services)

    return mailbox


async def handler(session: AgiSession, runtime: Any, services: Services) -> str:
    policy = runtime.policy
    # First, before anything acts on the call: the language of the phone's user, if any.
    await session.set_language(language_of(policy, bound_user(policy, session.env)))
    call = MenuCall(session, runtime, services)
    try:
        await session.answer()
        user_id, outcome = await login(call, services.guard)
        if user_id is None:
            await call.saying.stock((prompts.GOODBYE,))
            await session.set_status("AUTH_FAILED")
            return outcome
        user = policy.users[user_id]
        call.user = user
        if not user.features.mailbox_by_phone:
            log.info("mailbox by phone refused for %s: profile %r does not grant "
                     "mailbox_by_phone", user.id, user.profile)
            await call.saying.phrase("not_allowed")
            await call.saying.stock((prompts.GOODBYE,))
            await session.set_status("NOT_ALLOWED")
            return "NOT_ALLOWED"
        await call.run()
        await session.set_status("MAILBOX_DONE")
        return "MAILBOX_DONE"
    except AgiHangup:
        if call.menu is not None:
            call.menu.feed(Hangup())
        await session.set_status("MAILBOX_DONE")
        return "CALLER_HUNGUP"
    finally:
        await call.close()


__all__ = ["Services", "handler", "make_handler"]
