"""Who is calling their mailbox: the phone the policy binds to a user, else a typed mailbox.

From a phone the policy binds to a user (extension, direct number or mobile,
as :func:`mailcall.core.policy.numbers.find_owner` reads them) only the PIN is
asked; from anywhere else, the mailbox number first (an extension or number,
which :func:`~mailcall.core.policy.numbers.find_mailbox` turns into the
mailbox that takes its messages), then the PIN. The caller ID is never proof
of anything: it only saves typing the mailbox number, the PIN is always asked.

PINs are the policy's scrypt hashes, checked on the process's PIN threads
(:func:`~mailcall.core.policy.pins.check_user_pin_off_loop`: off the event
loop and out of the default executor, so a burst of logins does not hold up
the calls already in a menu), and wrong ones count in the same cross-call
:class:`~mailcall.agi.pin_guard.PinGuard` the greeting menu uses (one per
server process), per account: the user claimed, or the calling number when
the caller claims nobody, so an unknown mailbox costs the same scrypt and
tells nothing about who exists.

The check is waited for under the call's "one moment please"
(:meth:`~.mailbox.CallMailbox.slow`): when many callers type their PIN at
once the checks queue on the PIN threads, and the caller must not hear
silence meanwhile. A key typed then is kept for the menu if the PIN was
right, as at the mailbox's opening.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mailcall.agi import prompts
from mailcall.agi.pin_guard import PIN_LOCKED, PIN_OK, PinGuard, ask_pin
from mailcall.agi.safety import dialled
from mailcall.agi.session import AgiSession
from mailcall.core.policy.numbers import find_mailbox, find_owner, language_of
from mailcall.core.policy.pins import check_user_pin_off_loop
from mailcall.userstore.overlay import decision_policy

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

MAX_TRIES = 3
DIGIT_WAIT_MS = 3000
"""GET DATA waits this long for each digit: no silence longer than 3 s (issue #12)."""
ASK = "ask"
"""AGI argument 1 that makes the menu ask for the mailbox even from a known phone."""


def bound_user(policy: Any, env: Any) -> str | None:
    """The user whose phone this is (caller ID read as extension, number or mobile)."""
    if env.arg(1) == ASK:
        return None
    owner = find_owner(policy, dialled(env.callerid), mobiles=True)
    return owner if owner is not None and owner in policy.users else None


async def login(call: MenuCall, guard: PinGuard) -> tuple[str | None, str]:
    """(user id, outcome): the user once their PIN is right, else None and why.

    Outcomes: ``OK``, ``AUTH_FAILED`` (three wrong tries), ``AUTH_LOCKED`` (the shared
    lockout). Raises AgiHangup when the caller leaves; a guess being asked for is then
    counted as abandoned, never as a wrong PIN.
    """
    session: AgiSession = call.session
    runtime = call.runtime
    env = session.env
    # Refined by the user store: a PIN the user set (web, CLI) opens the mailbox too.
    policy = decision_policy(runtime)
    bound = bound_user(policy, env)
    caller = dialled(env.callerid) or "(no caller ID)"
    for _attempt in range(MAX_TRIES):
        user_id = bound
        if user_id is None:
            typed = (await session.get_data(prompts.ENTER_MAILBOX, DIGIT_WAIT_MS, 12)).digits
            user_id = find_mailbox(policy, typed.rstrip("#")) if typed else None
        account = user_id or f"unknown phone {caller}"

        async def check(pin: str, user_id: str | None = user_id) -> bool:
            call.saying.quiet_now()  # the caller typed: the silence starts here
            ok = await call.mailbox.slow(asyncio.ensure_future(
                check_user_pin_off_loop(policy, user_id, pin)))
            if not ok:
                call.mailbox.take_key()  # typed during "one moment please": not for a menu
            return ok

        outcome = await ask_pin(session, guard, account, menu="mailbox", check=check,
                                digit_wait_ms=DIGIT_WAIT_MS, log=log)
        if outcome == PIN_OK:
            if user_id != bound:
                await session.set_language(language_of(policy, user_id))
            return user_id, "OK"
        if outcome == PIN_LOCKED:
            return None, "AUTH_LOCKED"
    return None, "AUTH_FAILED"
