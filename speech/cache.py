"""Short sentences already spoken, kept as their 8 kHz audio, so the next call says them free.

Why: some of mailcall's own sentences repeat across calls word for word ("You
have 3 unread e-mails."), and every login used to synthesise and resample
them afresh: when many callers log in at once that is CPU on the way to their
first audio. Only sentences a caller of :meth:`~mailcall.speech.Speaker.speak`
marks as repeating (``cache=True``) are kept: mail bodies and envelopes name
people and times, rarely repeat, and must not linger in memory.

The key is (engine, voice, text): the same engine with the same voice (the
engine's language tag from ``resolve_language``, which is what selects its
voice) turns the same text into the same samples. The cache is bounded in
entries and in bytes, least recently used first out, and holds only
sentences up to :data:`MAX_TEXT` characters. It is used from the speech
worker thread and, for statistics, from anywhere: one lock guards it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

MAX_ENTRIES = 256
"""Sentences kept at most."""
MAX_BYTES = 8 * 1024 * 1024
"""Audio kept at most (8 kHz 16-bit: about 8.7 minutes of speech)."""
MAX_TEXT = 200
"""A longer sentence is not kept (ours are short; a long one is not a repeating count)."""


@dataclass(frozen=True, slots=True)
class Spoken:
    """One sentence as Asterisk plays it: raw 8 kHz s16le, and its length in seconds."""

    pcm: bytes
    seconds: float


class SentenceCache:
    """A bounded LRU map (engine, voice, text) -> :class:`Spoken`."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES,
                 max_text: int = MAX_TEXT) -> None:
        if max_entries < 0 or max_bytes < 0:
            raise ValueError("a cache bound cannot be negative")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_text = max_text
        self._items: OrderedDict[tuple[str, str, str], Spoken] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    @property
    def size(self) -> int:
        """Bytes of audio held."""
        with self._lock:
            return self._bytes

    def get(self, engine: str, voice: str, text: str) -> Spoken | None:
        key = (engine, voice, text)
        with self._lock:
            got = self._items.get(key)
            if got is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return got

    def put(self, engine: str, voice: str, text: str, spoken: Spoken) -> bool:
        """Keep `spoken` for that key; False when it is not kept (too long a text, or
        larger than the whole byte bound)."""
        if len(text) > self.max_text or len(spoken.pcm) > self.max_bytes \
                or self.max_entries == 0:
            return False
        key = (engine, voice, text)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= len(old.pcm)
            self._items[key] = spoken
            self._bytes += len(spoken.pcm)
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _key, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped.pcm)
        return True
