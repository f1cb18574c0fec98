"""The contract a speech engine plugin fulfils (hook ``mailcall_speech_engines``).

Every engine is a :class:`GreetingEngine`; one that also reads mail aloud is a
:class:`StreamingEngine`. There is no speech-to-text contract: nothing in
mailcall transcribes yet (``features.transcription`` is refused by the check).

Mail is read aloud one sentence at a time so playback starts at once and 50
calls share one engine fairly, so the streaming contract is a *sentence*
method: the engine turns one short sentence into samples, and mailcall does
the rest the same way for every engine (text preparation, scheduling,
resampling to 8 kHz, the ``.sln`` files). The engine is called from one
worker thread at a time, so engines whose library is not thread-safe (as
eSpeak NG's is not) need no locking of their own for this path.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy


@runtime_checkable
class GreetingEngine(Protocol):
    """Writes whole greetings as files (``mailcall greetings generate``)."""

    name: str

    def synthesize(self, text: str, language: str, out_path: str) -> bool:
        """Write `text` spoken in `language` as an 8 kHz mono 16-bit WAV at `out_path`.

        Blocking. False when the language has no voice or the engine failed
        (the failure is logged by the engine).
        """
        ...


@runtime_checkable
class StreamingEngine(GreetingEngine, Protocol):
    """Reads mail aloud sentence by sentence (the mailbox menu)."""

    #: Rate of the samples :meth:`synthesize_sentence` returns.
    sample_rate: int

    def resolve_language(self, language: str) -> str | None:
        """The voice language used for `language` ("fr-CA" → "fr-ca" or "fr"), None if none."""
        ...

    def synthesize_sentence(self, sentence: str, language: str) -> numpy.ndarray:
        """One sentence of plain text → mono int16 samples at :attr:`sample_rate`.

        Blocking, never called concurrently. `language` comes from
        :meth:`resolve_language`. The text is read as text: markup and
        phoneme syntax must not be interpreted. Raises
        :class:`mailcall.speech.errors.SpeechFailed`.
        """
        ...


def engines_from(pm: Any) -> list[GreetingEngine]:
    """Every engine the ``mailcall_speech_engines`` hook offers, in plugin order, each checked
    against :class:`GreetingEngine` here, where they are collected: a plugin that returns
    anything else is named at once (a TypeError naming the plugin), not skipped in silence."""
    from mailcall.core.host.collect import collected

    return collected(pm, "mailcall_speech_engines", GreetingEngine, expected=(
        "a mailcall.speech.GreetingEngine (name: str, synthesize(text, language, out_path) "
        "-> bool)"))
