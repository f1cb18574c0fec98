"""``agi://host/greeting[?user=ID]``: a user records a personal greeting by phone.

The caller proves who they are with their PIN (checked against the policy's
scrypt hash, off the event loop: scrypt is deliberately slow), picks a kind
(1 unavailable, 2 busy, 3 absence — only kinds their profile grants, a greeting
they turned off included: recording it turns it on again in the user store, origin
``phone``, as in the mailbox's options), and records. The new greeting is written
under a temporary name and renamed over the old one, so a call arriving meanwhile
plays either the old or the new greeting, never half a file; a recording cut by a
hang-up is thrown away, and so is one cut by a lost connection or by mailcall
stopping (nothing else would ever clean the temporary file up).

Wrong PINs are also counted across calls (:mod:`..pin_guard`): after 5 in
15 minutes for one account, its prompt is refused for 15 minutes, with a
warning in the log naming the account and the calling number.

Where the greeting lives and how the new one replaces the old are
:mod:`mailcall.agi.folders`' (``greeting_path``, ``prepare_recording``,
``commit_recording``, ``discard_recording``), shared with the phone menu: the
temporary file is recorded in the greeting's own folder, made group-writable
for Asterisk whatever mailcall's umask, so the rename never crosses filesystems.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from mailcall.core.policy.numbers import find_owner, language_of
from mailcall.core.policy.pins import check_user_pin_off_loop
from mailcall.userstore.by_phone import ORIGIN
from mailcall.userstore.overlay import decision_policy

from .. import prompts
from ..driver import inline
from ..greeting_recording import may_record, record_greeting, use_again
from ..pin_guard import PIN_LOCKED, PIN_OK, PinGuard, ask_pin
from ..safety import dialled
from ..session import AgiSession

log = logging.getLogger("mailcall.agi.greeting")

KINDS = {"1": "unavailable", "2": "busy", "3": "absence"}
MAX_TRIES = 3


def find_user(policy: Any, env: Any) -> str | None:
    """The user recording a greeting: named by the dialplan, else recognised by caller ID.

    The calling number may be the user's extension, direct number or mobile,
    in any form the organisation's country reads (a trunk's ``0612345678``).
    """
    for candidate in (env.arg(1), env.param("user")):
        if candidate and candidate in policy.users:
            return candidate
    owner = find_owner(policy, dialled(env.callerid), mobiles=True)
    return owner if owner is not None and owner in policy.users else None


def make_handler(guard: PinGuard) -> Callable[[AgiSession, Any], Awaitable[str]]:
    """The ``greeting`` handler with wrong PINs counted across calls by `guard`."""

    @inline
    def greeting(session: AgiSession, runtime: Any) -> Awaitable[str]:
        return handler(session, runtime, guard=guard)  # no extra coroutine frame per step

    return greeting


@inline
async def handler(session: AgiSession, runtime: Any, *, guard: PinGuard | None = None) -> str:
    """Without a `guard`, wrong PINs are only limited per call (tests, third parties)."""
    env = session.env
    # Refined by the user store: a PIN and the greetings the user chose are theirs.
    policy = decision_policy(runtime)
    user_id = find_user(policy, env)
    guard = guard if guard is not None else PinGuard()
    account = user_id or f"unknown phone {dialled(env.callerid) or '(no caller ID)'}"
    await session.set_language(language_of(policy, user_id))
    await session.answer()
    user = policy.users.get(user_id) if user_id else None
    async def check(pin: str) -> bool:
        # An unknown account costs the same scrypt as a known one: no timing oracle.
        return await check_user_pin_off_loop(policy, user_id, pin)  # the PIN threads

    for _attempt in range(MAX_TRIES):
        outcome = await ask_pin(session, guard, account, menu="greeting", check=check,
                                digit_wait_ms=5000, log=log)
        if outcome == PIN_OK:
            break
        if outcome == PIN_LOCKED:
            await session.stream_file(prompts.GOODBYE)
            await session.set_status("AUTH_FAILED")
            return "AUTH_LOCKED"
    else:
        await session.stream_file(prompts.GOODBYE)
        await session.set_status("AUTH_FAILED")
        return "AUTH_FAILED"
    assert user is not None
    granted = [k for k in KINDS.values() if may_record(runtime, user.id, k)]
    kind = None
    for _attempt in range(MAX_TRIES):
        digit = (await session.get_data(prompts.CHOOSE_GREETING, 5000, 1)).digits
        choice = KINDS.get(digit)
        if choice in granted:
            kind = choice
            break
        await session.stream_file(prompts.INVALID_CHOICE)
    if kind is None:
        await session.stream_file(prompts.GOODBYE)
        await session.set_status("NO_CHOICE")
        return "NO_CHOICE"
    saved = await record_greeting(session, runtime.setting("greetings_dir"), user.id, kind)
    if saved:
        log.info("greeting %s of %s replaced", kind, user.id)
        await use_again(runtime, user.id, kind, origin=ORIGIN)
        if not session.hungup:
            await session.stream_file(prompts.SAVED)
        await session.set_status("GREETING_SAVED", greeting=kind)
        return "GREETING_SAVED"
    await session.set_status("GREETING_NOT_SAVED", greeting=kind)
    return "GREETING_NOT_SAVED"
