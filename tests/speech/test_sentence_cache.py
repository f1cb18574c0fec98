"""The bounded cache of repeating sentences (speech/cache.py), and the speaker using it:
only sentences spoken with cache=True are kept, a hit is the same audio without the
engine, and the bounds (entries, bytes, text length) hold, least recently used out."""

from __future__ import annotations

import contextlib

import pytest

from mailcall.speech import Speaker
from mailcall.speech.cache import SentenceCache, Spoken


def spoken(size: int) -> Spoken:
    return Spoken(b"\0" * size, size / 16_000)


def test_the_entry_bound_drops_the_least_recently_used():
    cache = SentenceCache(max_entries=2, max_bytes=10_000)
    cache.put("e", "fr", "un", spoken(10))
    cache.put("e", "fr", "deux", spoken(10))
    assert cache.get("e", "fr", "un") is not None  # "un" is now the most recent
    cache.put("e", "fr", "trois", spoken(10))
    assert len(cache) == 2
    assert cache.get("e", "fr", "deux") is None
    assert cache.get("e", "fr", "un") is not None and cache.get("e", "fr", "trois") is not None


def test_the_byte_bound_holds_and_too_large_is_not_kept():
    cache = SentenceCache(max_entries=100, max_bytes=1_000)
    for n in range(5):
        assert cache.put("e", "fr", f"phrase {n}", spoken(300))
    assert cache.size <= 1_000 and len(cache) == 3
    assert not cache.put("e", "fr", "énorme", spoken(1_001))
    assert cache.get("e", "fr", "énorme") is None and cache.size <= 1_000


def test_a_replaced_entry_counts_its_bytes_once():
    cache = SentenceCache(max_entries=10, max_bytes=1_000)
    cache.put("e", "fr", "un", spoken(400))
    cache.put("e", "fr", "un", spoken(500))
    assert cache.size == 500 and len(cache) == 1


def test_long_texts_are_not_kept_and_the_key_is_engine_voice_and_text():
    cache = SentenceCache(max_text=20)
    assert not cache.put("e", "fr", "x" * 21, spoken(10))
    cache.put("e", "fr", "Bonjour.", spoken(10))
    assert cache.get("e", "en", "Bonjour.") is None
    assert cache.get("other", "fr", "Bonjour.") is None
    assert cache.get("e", "fr", "Bonjour.") is not None
    assert (cache.hits, cache.misses) == (1, 2)


def test_a_zero_bound_keeps_nothing_and_a_negative_one_is_refused():
    assert not SentenceCache(max_entries=0).put("e", "fr", "un", spoken(10))
    with pytest.raises(ValueError):
        SentenceCache(max_bytes=-1)


class CountingEngine:
    """The real espeak-ng engine, counting the sentences it is asked to synthesise."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.name = engine.name
        self.sample_rate = engine.sample_rate
        self.synthesised: list[str] = []

    def resolve_language(self, language: str):
        return self.engine.resolve_language(language)

    def synthesize_sentence(self, sentence: str, language: str):
        self.synthesised.append(sentence)
        return self.engine.synthesize_sentence(sentence, language)

    def synthesize(self, text: str, language: str, out_path: str) -> bool:
        return self.engine.synthesize(text, language, out_path)


async def say(speaker: Speaker, text: str, folder, cache: bool) -> list[bytes]:
    folder.mkdir(exist_ok=True)
    async with contextlib.aclosing(speaker.speak(text, "en", folder, cache=cache)) as chunks:
        return [chunk.path.read_bytes() async for chunk in chunks]


async def test_a_repeating_sentence_is_synthesised_once_and_sounds_the_same(espeak, tmp_path):
    engine = CountingEngine(espeak)
    speaker = Speaker(engine)
    first = await say(speaker, "You have 3 unread e-mails.", tmp_path / "a", cache=True)
    again = await say(speaker, "You have 3 unread e-mails.", tmp_path / "b", cache=True)
    assert engine.synthesised == ["You have 3 unread e-mails."]
    assert again == first and len(first[0]) > 8_000  # the same audio, in the new call's file
    assert speaker.cache.hits == 1


async def test_without_cache_true_nothing_is_kept(espeak, tmp_path):
    engine = CountingEngine(espeak)
    speaker = Speaker(engine)
    await say(speaker, "Message from Bernard Petit.", tmp_path / "a", cache=False)
    await say(speaker, "Message from Bernard Petit.", tmp_path / "b", cache=False)
    assert len(engine.synthesised) == 2 and len(speaker.cache) == 0
