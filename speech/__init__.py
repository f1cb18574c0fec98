"""Mail read aloud on the phone: text → short sentences → speech → 8 kHz ``.sln`` chunks.

The mailbox menu creates one :class:`Speaker` per process
(``Speaker.from_plugins(runtime.pm)``) and iterates ``speaker.speak(...)``;
engines come from the ``mailcall_speech_engines`` hook and implement
:class:`StreamingEngine` (eSpeak NG, in-process, by default).
"""

from mailcall.speech.engine import GreetingEngine, StreamingEngine, engines_from
from mailcall.speech.errors import NoVoice, SpeechError, SpeechFailed, SpeechUnavailable
from mailcall.speech.language import guess_language
from mailcall.speech.reading import MAX_CHARS, speakable_sentences
from mailcall.speech.speaker import Chunk, Speaker

__all__ = [
    "MAX_CHARS",
    "Chunk",
    "GreetingEngine",
    "NoVoice",
    "Speaker",
    "SpeechError",
    "SpeechFailed",
    "SpeechUnavailable",
    "StreamingEngine",
    "engines_from",
    "guess_language",
    "speakable_sentences",
]
