"""What one server process shares between menu calls (built by plugins/phonemenu.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from mailcall.agi.pin_guard import PinGuard

from .ports import Decoder, MailStore, Speaker


@dataclass
class Services:
    store: MailStore | None
    speaker: Speaker | None
    decode: Decoder | None
    guard: PinGuard
    unavailable: tuple[type[BaseException], ...]
    """The store's MailboxUnavailable (and speech errors that mean "cannot say it")."""
    unreadable: tuple[type[BaseException], ...]
    """MessageUnreadable and UnplayableAudio: this one message cannot be played."""
    phrases: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    """Generated fixed phrases, made once per process: (phrase, language) -> stream names."""
    phrase_locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
