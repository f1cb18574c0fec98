"""Recording a user's greeting by phone: the one sequence and the one rule for the
greeting script and the mailbox's options.

Which kinds a user may record is the profile's (:func:`may_record`), not the user's
own choice of greetings: a greeting the user turned off (on the page, with
``mailcall user set``) and records again by phone is turned on again in the user
store (:func:`use_again`), so a greeting just recorded is never one callers cannot
hear (docs/phone-menu.md, "PIN and absence by phone: the user store").

Recorded under a hidden temporary name in the greeting's own folder, then renamed
over the old one (:mod:`.folders`), so a call arriving meanwhile plays the old
greeting or the new one, never half a file. A recording cut by a hang-up, a lost
connection or mailcall stopping is thrown away (nothing else would ever clean the
temporary file up), and the old greeting stays.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from mailcall.userstore import by_phone
from mailcall.userstore.errors import RefinementRefused, StoreError
from mailcall.userstore.overlay import decision_policy
from mailcall.userstore.service import UserStore

from .folders import commit_recording, discard_recording, greeting_path, prepare_recording
from .session import AgiSession

log = logging.getLogger("mailcall.agi.greeting")

MAX_GREETING_MS = 60_000
SILENCE_S = 3
"""Seconds of silence that end a greeting (as a reply recorded in the mailbox)."""


async def record_greeting(session: AgiSession, greetings_dir: Path | str, user_id: str,
                          kind: str) -> bool:
    """Record `user_id`'s greeting `kind` after the beep (``#`` ends it); True when the new
    one replaced the old. The caller checks :func:`may_record` first and, when it
    returns True, calls :func:`use_again`."""
    loop = asyncio.get_running_loop()
    final = greeting_path(Path(greetings_dir), user_id, kind)
    tmp = await loop.run_in_executor(None, prepare_recording, final, session.env.uniqueid)
    try:
        rec = await session.record_file(str(tmp), "wav", "#", MAX_GREETING_MS, beep=True,
                                        silence_s=SILENCE_S)
        saved = rec.outcome in ("dtmf", "timeout") and await loop.run_in_executor(
            None, commit_recording, tmp, final)
    except BaseException:
        # Connection lost, or cancelled (mailcall stopping): right here, not in the
        # executor, since a cancelled task cannot count on its next await. One unlink.
        discard_recording(tmp)
        raise
    if not saved:
        await loop.run_in_executor(None, discard_recording, tmp)
    return bool(saved)


def may_record(runtime: Any, user_id: str, kind: str) -> bool:
    """Whether `user_id` may record their greeting `kind` by phone: their profile grants it.

    The ceiling is the policy IT wrote (``runtime.policy``), not the one refined by the
    user store: a greeting the user turned off may be recorded, and is then used again."""
    ceiling = runtime.policy.users.get(user_id)
    return ceiling is not None and kind in ceiling.features.greetings


async def use_again(runtime: Any, user_id: str, kind: str, *, origin: str) -> None:
    """After `kind` was recorded: if the user had turned it off, turn it on in the store.

    A greeting recorded and then never played would be a surprise; the choice of
    greetings is a setting of the user store (``greetings``), so it is written there by
    the user, audited with `origin`, like the PIN and the absence. A store that refuses
    or cannot be used is logged and the recording kept (unused until the setting is
    changed on the page or with ``mailcall user set``)."""
    refined = decision_policy(runtime).users.get(user_id)
    if refined is None or kind in refined.features.greetings:
        return
    policy = runtime.policy

    def write(store: UserStore) -> bool:
        stored = store.refinements(user_id).values.get("greetings")
        if stored is None or kind in stored.value:
            return False  # on already (changed meanwhile): nothing to write or to tell
        store.set(policy, user_id, {"greetings": [*stored.value, kind]}, actor=user_id,
                  origin=origin)
        return True

    try:
        wrote = await by_phone.in_store(runtime, write)
    except (RefinementRefused, StoreError) as exc:
        log.warning("%s recorded their %s greeting by phone, which stays unused: the user "
                    "store (%s) refused to turn it on: %s", user_id, kind,
                    by_phone.store_location(runtime), exc)
        return
    if not wrote:
        return
    by_phone.obeyed_now(runtime)
    log.info("%s's %s greeting is used again (set by %s in the user store)",
             user_id, kind, origin)
