"""Built-in plugin: text-to-speech with eSpeak NG, for generated voicemail greetings.

eSpeak NG is small, packaged by every distribution and speaks French and
English offline; sox turns its output into the 8 kHz mono 16-bit WAV that
Asterisk's format_wav plays without transcoding. No speech-to-text engine is
built in: transcription needs a plugin that offers ``transcribe``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess

from mailcall.core.hookspecs import hookimpl

_VOICES = {"fr": "fr", "en": "en"}
log = logging.getLogger("mailcall.speech")


class EspeakEngine:
    name = "espeak-ng"

    def __init__(self, espeak: str | None = None, sox: str | None = None) -> None:
        self.espeak = espeak or shutil.which("espeak-ng")
        self.sox = sox or shutil.which("sox")

    @property
    def available(self) -> bool:
        return bool(self.espeak and self.sox)

    def synthesize(self, text: str, language: str, out_path: str) -> bool:
        """Write `text` spoken in `language` as an 8 kHz WAV; False if it cannot."""
        voice = _VOICES.get(language)
        if voice is None or not self.available:
            return False
        # The text goes through stdin, never the command line: it holds names from the policy.
        try:
            speech = subprocess.run(
                [self.espeak, "-v", voice, "-s", "150", "--stdin", "--stdout"],
                input=text.encode(), capture_output=True, check=True, timeout=60)
            subprocess.run([self.sox, "-t", "wav", "-", "-r", "8000", "-c", "1", "-b", "16",
                            "-e", "signed-integer", "-t", "wav", out_path],
                           input=speech.stdout, capture_output=True, check=True, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            stderr = getattr(exc, "stderr", b"") or b""
            log.error("speaking a greeting failed (%s): %s", exc,
                      stderr.decode("utf-8", "replace").strip()[:200])
            return False
        return True


@hookimpl
def mailcall_speech_engines() -> list:
    engine = EspeakEngine()
    return [engine] if engine.available else []
