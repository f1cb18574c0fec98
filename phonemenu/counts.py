"""How many messages the caller is told they have: the greeting and each folder's count.

Voicemail, in the greeting: the counts of hook ``mailcall_voice_counts``
(the message lamp's, docs/mwi.md), asked as soon as the caller is in and
waited for at most ``LAMP_WAIT_S``, overlapping the IMAP listing. They are
exact (the lamp counts every proven deposit), so they are said as numbers.
When the hook gives nothing (no lamp, its folder unreadable lately, too
slow, or failing), the menu counts its own listing, which the mail store
stops at ``max_listed`` messages: a complete listing is said as numbers; a
capped one never is — its open end is "at least N" (see
:func:`~.words.voice_count_at_least`), because what was not listed is
unknown, not absent, and may not even be voicemail (no seal checked).

Mail: the store counts every unseen mail of the inbox, so that number is exact.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from mailcall.agi import prompts
from mailcall.core.contracts import VoiceCounts
from mailcall.core.host.voice_counts import read_voice_counts

from . import words
from .machine import VOICE

if TYPE_CHECKING:
    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

LAMP_WAIT_S = 1.0
"""Longest the greeting waits for the lamp's counts (from when the caller was in)."""


def ask_lamp(runtime: Any, user: str) -> asyncio.Future[VoiceCounts | None]:
    """The lamp's counts for `user`, as a task to await later (None when it has none)."""
    return asyncio.ensure_future(read_voice_counts(
        runtime, user, wait=LAMP_WAIT_S, purpose="the phone menu's greeting",
        instead="the menu counts its own listing"))


async def lamp_counts(call: MenuCall) -> VoiceCounts | None:
    task = call.lamp
    if task is None:
        return None
    try:
        return await task
    except Exception:  # read_voice_counts catches what the hook raises: belt and braces
        log.exception("phone menu for %s: the lamp's counts", call.who)
        return None


async def say_counts(call: MenuCall, folder: str, *, cut: bool = True,
                     greeting: bool = False) -> None:
    """The count of `folder`; in the greeting, voicemail's from the lamp when it has them."""
    saying = call.saying
    if folder != VOICE:
        await saying.text([words.mail_count(call.mailbox.mail_count, saying.words_lang)],
                          cut=cut, repeats=True)
        return
    counts = await lamp_counts(call) if greeting else None
    if counts is not None:
        await say_voice_numbers(call, counts.new, counts.old, cut=cut)
        return
    items = call.menu.voice if call.menu is not None else []
    new = sum(1 for m in items if not m.seen)  # mailstore.MessageSummary
    old = len(items) - new
    if call.listing_complete(VOICE):
        await say_voice_numbers(call, new, old, cut=cut)
        return
    await saying.text([words.voice_count_at_least(
        new, old, new_exact=call.mailbox.voice_new_complete, language=saying.words_lang)],
        cut=cut, repeats=True)


async def say_voice_numbers(call: MenuCall, new: int, old: int, *, cut: bool = True) -> None:
    """Exact counts, with VoiceMailMain's stock prompts: "you have 2 new messages and 1 old"."""
    saying = call.saying
    if not new and not old:
        await saying.stock((prompts.YOU_HAVE, prompts.NO, prompts.MESSAGES), cut=cut)
        return
    await saying.stream(prompts.YOU_HAVE, cut=cut)
    if new:
        await saying.number(new, cut=cut)
        await saying.stock((prompts.NEW, prompts.MESSAGE if new == 1 else prompts.MESSAGES),
                           cut=cut)
    if new and old:
        await saying.stream(prompts.AND, cut=cut)
    if old:
        await saying.number(old, cut=cut)
        await saying.stock((prompts.OLD, prompts.MESSAGE if old == 1 else prompts.MESSAGES),
                           cut=cut)
