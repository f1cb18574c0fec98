"""Built-in plugin: eSpeak NG, in-process, for generated greetings and mail read aloud.

eSpeak NG is small, packaged by every distribution and speaks French, English
and a hundred other languages offline. It is called through cffi
(:mod:`mailcall.speech.espeak`), so neither a greeting nor a sentence of a
mail costs a process. There is no speech-to-text part (docs/speech.md).
"""

from __future__ import annotations

import logging

from mailcall.core.hookspecs import hookimpl
from mailcall.speech.engine import GreetingEngine
from mailcall.speech.espeak import EspeakEngine

__all__ = ["EspeakEngine", "mailcall_speech_engines"]

log = logging.getLogger("mailcall.speech")


@hookimpl
def mailcall_speech_engines() -> list[GreetingEngine]:
    engine = EspeakEngine()
    if not engine.available:
        log.warning("no built-in speech: %s", engine.problem)
        return []
    return [engine]
