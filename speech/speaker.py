"""Mail read aloud as a stream of ``.sln`` files, sentence by sentence.

The first sentence is playable a few milliseconds after :meth:`Speaker.speak`
is called; the next ones are synthesised while the previous one plays
(``ahead`` of them at most, so a caller who stops listening wasted little
work). All engine work and file writing happen on the engine's worker thread
(:mod:`mailcall.speech.scheduler`), never on the event loop. Sentences the
caller marks as repeating (``cache=True``: the menu's counts) are kept, bounded,
in :mod:`mailcall.speech.cache` and only copied into the next call's file.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailcall.playback.pcm import write_raw, write_sln
from mailcall.speech.cache import SentenceCache, Spoken
from mailcall.speech.engine import StreamingEngine, engines_from
from mailcall.speech.errors import NoVoice, SpeechError, SpeechFailed, SpeechUnavailable
from mailcall.speech.language import guess_language
from mailcall.speech.reading import MAX_CHARS, speakable_sentences
from mailcall.speech.scheduler import Scheduler, Ticket, now


@dataclass(frozen=True, slots=True)
class Chunk:
    """One spoken sentence, as a file Asterisk plays without transcoding."""

    path: Path      # raw 8 kHz s16le mono, suffix ".sln"
    seconds: float
    index: int
    text: str       # what is said in it (already cleaned)

    @property
    def stream_name(self) -> str:
        """What STREAM FILE wants: the path without its ".sln" suffix."""
        return str(self.path.with_suffix(""))


class Speaker:
    """Speaks through one :class:`StreamingEngine`; make one per process and share it."""

    def __init__(self, engine: StreamingEngine, *, ahead: int = 2,
                 cache: SentenceCache | None = None) -> None:
        if not isinstance(engine, StreamingEngine):
            raise TypeError(f"{engine!r} does not implement mailcall.speech.StreamingEngine")
        self.engine = engine
        self.ahead = max(1, ahead)
        self.scheduler = Scheduler(f"speech-{engine.name}")
        self.cache = cache if cache is not None else SentenceCache()
        """Repeating sentences already spoken (only those spoken with ``cache=True``)."""

    @classmethod
    def from_engines(cls, engines: Iterable[Any], **options: Any) -> Speaker:
        """A speaker on the first engine that can stream (plugins' order)."""
        for engine in engines:
            if isinstance(engine, StreamingEngine):
                return cls(engine, **options)
        raise SpeechUnavailable(
            "no installed speech engine can read mail aloud: install libespeak-ng1 "
            "(apt-get install libespeak-ng1 espeak-ng-data) or a speech engine plugin")

    @classmethod
    def from_plugins(cls, pm: Any, **options: Any) -> Speaker:
        """A speaker on the engines the ``mailcall_speech_engines`` hook offers."""
        return cls.from_engines(engines_from(pm), **options)

    def voice_for(self, language: str | None, text: str, fallback: str) -> str:
        """The engine language that will read `text`: `language`, else a guess, else `fallback`."""
        wanted = language or guess_language(text, fallback)
        voice = self.engine.resolve_language(wanted) or self.engine.resolve_language(fallback)
        if voice is None:
            raise NoVoice(f"{self.engine.name} has no voice for {wanted!r} nor for the "
                          f"fallback {fallback!r}; set the user's or organisation's language "
                          "to one it speaks")
        return voice

    async def speak(self, text: str, language: str | None, folder: Path, *,
                    fallback: str = "en", max_chars: int = MAX_CHARS,
                    cache: bool = False) -> AsyncIterator[Chunk]:
        """Yield `text` spoken as one :class:`Chunk` per sentence, written in `folder`.

        Use it as ``async with contextlib.aclosing(speaker.speak(...)) as chunks``
        so that leaving early (a key, a hang-up) cancels what was not yet
        spoken at once and deletes its files. `cache`: the text is one of mailcall's
        own that repeats across calls (a count): its sentences are kept
        (:attr:`cache`) and taken from there next time.
        """
        voice = self.voice_for(language, text, fallback)
        sentences = await asyncio.to_thread(speakable_sentences, text, voice,
                                            max_chars=max_chars)
        async for chunk in self._stream(sentences, voice, Path(folder), cache):
            yield chunk

    async def _stream(self, sentences: list[str], voice: str,
                      folder: Path, cache: bool = False) -> AsyncIterator[Chunk]:
        if not folder.is_dir():
            raise SpeechFailed(f"speech folder {folder} does not exist")
        prefix = secrets.token_hex(6)
        in_flight: deque[tuple[int, Path, asyncio.Future, Ticket]] = deque()
        started: float | None = None
        delivered = 0.0
        upcoming = iter(enumerate(sentences))

        def submit() -> None:
            item = next(upcoming, None)
            if item is None:
                return
            index, sentence = item
            # Deadline: when this call runs out of audio if it plays what it was given
            # and what is already being rendered for it.
            left = 0.0 if started is None else max(0.0, delivered - (now() - started))
            left += sum(_estimate(sentences[i]) for i, *_ in in_flight)
            path = folder / f"{prefix}-{index + 1:04d}.sln"
            future, ticket = self.scheduler.run_async(
                now() + left,
                lambda ticket: self._render(sentence, voice, path, ticket, cache))
            in_flight.append((index, path, future, ticket))

        try:
            for _ in range(self.ahead):
                submit()
            while in_flight:
                index, path, future, _ticket = in_flight[0]
                seconds = await future
                in_flight.popleft()
                submit()
                if started is None:
                    started = now()
                delivered += seconds
                yield Chunk(path, seconds, index, sentences[index])
        finally:
            for _index, path, future, ticket in in_flight:
                ticket.cancel()
                future.cancel()
                path.unlink(missing_ok=True)

    def _render(self, sentence: str, voice: str, path: Path, ticket: Ticket,
                cache: bool = False) -> float:
        """On the worker: synthesise one sentence (or take it from the cache) and write
        its file."""
        try:
            kept = self.cache.get(self.engine.name, voice, sentence) if cache else None
            if kept is not None:
                write_raw(kept.pcm, path)
                seconds = kept.seconds
            else:
                samples = self.engine.synthesize_sentence(sentence, voice)
                seconds = write_sln(samples, self.engine.sample_rate, path)
                if cache:  # what Asterisk will play, as written
                    self.cache.put(self.engine.name, voice, sentence,
                                   Spoken(path.read_bytes(), seconds))
        except SpeechError:
            raise
        except Exception as exc:
            raise SpeechFailed(f"{self.engine.name} could not speak into {path}: {exc}") from exc
        if ticket.cancelled:  # the caller left while this was rendered: leave nothing behind
            path.unlink(missing_ok=True)
        return seconds


def _estimate(sentence: str) -> float:
    """Rough spoken length of `sentence` (about 14 characters a second at 150 words/min)."""
    return len(sentence) / 14.0
