"""eSpeak NG in-process through cffi (ABI mode, ``dlopen("libespeak-ng.so.1")``).

No compiler at install time and no process per sentence: Debian's
``libespeak-ng1`` is all it needs. The declarations below follow
``espeak-ng/speak_lib.h`` (API revision 12, stable since eSpeak 1.48).

The library keeps one global state (voice, parameters, callback) and is not
thread-safe, so each process has one :class:`_Library` behind one lock; the
mailbox menu's scheduler calls it from a single worker thread anyway.
Synthesis uses ``AUDIO_OUTPUT_SYNCHRONOUS``: ``espeak_Synth`` returns when the
sentence is done and the callback runs on the calling thread. Text is passed
with ``espeakCHARS_UTF8`` only — never ``espeakSSML`` nor ``espeakPHONEMES`` —
so tags and ``[[phonemes]]`` in a mail are read as the characters they are.
"""

from __future__ import annotations

import logging
import threading

import cffi
import numpy
import soundfile

from mailcall.playback.pcm import TELEPHONE_RATE, to_telephone
from mailcall.speech.errors import SpeechFailed, SpeechUnavailable

log = logging.getLogger("mailcall.speech")

LIBRARY = "libespeak-ng.so.1"

CDEF = """
typedef struct {
  int type; unsigned int unique_identifier; int text_position; int length;
  int audio_position; int sample; void *user_data;
  union { int number; const char *name; char string[8]; } id;
} espeak_EVENT;
typedef int (t_espeak_callback)(short *, int, espeak_EVENT *);
typedef struct {
  const char *name; const char *languages; const char *identifier;
  unsigned char gender; unsigned char age; unsigned char variant; unsigned char xx1;
  int score; void *spare;
} espeak_VOICE;
int espeak_Initialize(int output, int buflength, const char *path, int options);
void espeak_SetSynthCallback(t_espeak_callback *SynthCallback);
int espeak_Synth(const void *text, size_t size, unsigned int position, int position_type,
                 unsigned int end_position, unsigned int flags,
                 unsigned int *unique_identifier, void *user_data);
int espeak_SetVoiceByProperties(espeak_VOICE *voice_spec);
int espeak_SetParameter(int parameter, int value, int relative);
const espeak_VOICE **espeak_ListVoices(espeak_VOICE *voice_spec);
const char *espeak_Info(const char **path_data);
"""

AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_DONT_EXIT = 0x8000  # without it a missing espeak-ng-data calls exit()
CHARS_UTF8 = 1
ENDPAUSE = 0x1000  # the pause after a sentence: chunks played back to back sound natural
POS_CHARACTER = 1
PARAM_RATE = 1
EE_OK = 0
#: One sentence never needs more; the callback aborts past it (a bounded buffer whatever the text).
MAX_SENTENCE_SECONDS = 60


class _Library:
    """The process's one initialised libespeak-ng; every call holds :attr:`lock`."""

    def __init__(self, name: str) -> None:
        self.ffi = cffi.FFI()
        self.ffi.cdef(CDEF)
        try:
            self.lib = self.ffi.dlopen(name)
        except OSError as exc:
            raise SpeechUnavailable(
                f"cannot load {name} ({exc}); install it (Debian: apt-get install "
                "libespeak-ng1 espeak-ng-data) or a speech engine plugin") from exc
        self.lock = threading.Lock()
        rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, self.ffi.NULL,
                                          INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise SpeechUnavailable(
                f"{name} found no voice data (espeak_Initialize returned {rate}); "
                "install espeak-ng-data")
        self.sample_rate: int = rate
        self.version = self.ffi.string(self.lib.espeak_Info(self.ffi.NULL)).decode()
        self._samples: list[bytes] = []
        self._budget = 0
        self._callback = self.ffi.callback("t_espeak_callback", self._collect)
        self.lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None
        self._wpm: int | None = None
        self.languages = self._list_languages()

    def _collect(self, wav, count, events) -> int:
        if wav == self.ffi.NULL or count <= 0:
            return 0
        self._samples.append(bytes(self.ffi.buffer(wav, count * 2)))
        self._budget -= count
        return 1 if self._budget <= 0 else 0  # 1 aborts the synthesis

    def _list_languages(self) -> frozenset[str]:
        """Every language tag some installed voice declares (``fr``, ``fr-be``, ``en-us``...)."""
        found: set[str] = set()
        voices = self.lib.espeak_ListVoices(self.ffi.NULL)
        i = 0
        while voices[i] != self.ffi.NULL:
            # A list of (priority byte, name, NUL), ended by a zero priority byte.
            entry = voices[i].languages
            for _ in range(32):
                if entry[0] == b"\0":
                    break
                tag = self.ffi.string(entry + 1)
                found.add(tag.decode("ascii", "replace").lower())
                entry += len(tag) + 2
            i += 1
        return frozenset(found)

    def synthesize(self, text: str, language: str, wpm: int) -> numpy.ndarray:
        """`text` as int16 samples at :attr:`sample_rate`; caller holds :attr:`lock`."""
        if self._voice != language:
            spec = self.ffi.new("espeak_VOICE *")
            tag = self.ffi.new("char[]", language.encode("ascii"))
            spec.languages = tag
            rc = self.lib.espeak_SetVoiceByProperties(spec)
            if rc != EE_OK:
                raise SpeechFailed(f"espeak-ng has no voice for {language!r} (error {rc})")
            self._voice = language
        if self._wpm != wpm:
            self.lib.espeak_SetParameter(PARAM_RATE, wpm, 0)
            self._wpm = wpm
        data = text.replace("\0", " ").encode("utf-8") + b"\0"
        self._samples = []
        self._budget = MAX_SENTENCE_SECONDS * self.sample_rate
        try:
            rc = self.lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0,
                                       CHARS_UTF8 | ENDPAUSE, self.ffi.NULL, self.ffi.NULL)
            if rc != EE_OK:
                raise SpeechFailed(f"espeak_Synth failed with error {rc}")
            return numpy.frombuffer(b"".join(self._samples), dtype=numpy.int16)
        finally:
            self._samples = []


_libraries: dict[str, _Library] = {}
_libraries_lock = threading.Lock()


def library(name: str = LIBRARY) -> _Library:
    """The process-wide initialised library `name` (loaded on first use)."""
    with _libraries_lock:
        lib = _libraries.get(name)
        if lib is None:
            lib = _libraries[name] = _Library(name)
        return lib


class EspeakEngine:
    """eSpeak NG as a speech engine plugin: greetings and mail read aloud.

    ``wpm`` is the speaking rate in words per minute (eSpeak's default is 175;
    a little slower is easier to follow on a phone).
    """

    name = "espeak-ng"

    def __init__(self, library_name: str = LIBRARY, wpm: int = 150) -> None:
        self.library_name = library_name
        self.wpm = wpm
        self._problem: str | None = None
        try:
            self._lib: _Library | None = library(library_name)
        except SpeechUnavailable as exc:
            self._lib, self._problem = None, str(exc)

    @property
    def available(self) -> bool:
        return self._lib is not None

    @property
    def problem(self) -> str | None:
        """Why the engine cannot speak (what to install), or None."""
        return self._problem

    @property
    def sample_rate(self) -> int:
        return self._lib.sample_rate if self._lib is not None else 0

    def _require(self) -> _Library:
        if self._lib is None:
            raise SpeechUnavailable(self._problem or "espeak-ng is not available")
        return self._lib

    def resolve_language(self, language: str) -> str | None:
        if self._lib is None or not language:
            return None
        tag = language.strip().lower().replace("_", "-")
        if tag in self._lib.languages:
            return tag
        primary = tag.split("-", 1)[0]
        return primary if primary in self._lib.languages else None

    def synthesize_sentence(self, sentence: str, language: str) -> numpy.ndarray:
        lib = self._require()
        with lib.lock:
            return lib.synthesize(sentence, language, self.wpm)

    def synthesize(self, text: str, language: str, out_path: str) -> bool:
        """Write `text` spoken in `language` as an 8 kHz WAV; False if it cannot."""
        voice = self.resolve_language(language)
        if voice is None:
            if self._problem:
                log.error("speaking a greeting failed: %s", self._problem)
            return False
        try:
            samples = self.synthesize_sentence(text, voice)
            soundfile.write(out_path, to_telephone(samples, self.sample_rate), TELEPHONE_RATE,
                            subtype="PCM_16", format="WAV")
        except (SpeechFailed, OSError, RuntimeError) as exc:
            log.error("speaking a greeting failed (%s) writing %s", exc, out_path)
            return False
        return True
