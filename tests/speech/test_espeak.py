"""eSpeak NG called in-process: real audio, per language, markup read as text."""

from __future__ import annotations

import numpy

from mailcall.speech import StreamingEngine
from mailcall.speech.espeak import CHARS_UTF8, EE_OK, library

from .conftest import rms

PHRASE = "Bonjour, ceci est un essai de lecture."


def test_the_engine_speaks_real_audio_at_its_rate(espeak):
    assert isinstance(espeak, StreamingEngine)
    assert espeak.sample_rate == 22050  # espeak-ng's own voices
    samples = espeak.synthesize_sentence(PHRASE, "fr")
    assert samples.dtype == numpy.int16
    seconds = len(samples) / espeak.sample_rate
    assert 1.5 < seconds < 5, seconds  # seven words at 150 words a minute, plus the end pause
    assert rms(samples) > 0.03  # speech, not silence
    # Mostly voiced: more than half of the 20 ms frames carry sound.
    frames = samples[: len(samples) // 441 * 441].reshape(-1, 441).astype(float)
    assert (numpy.sqrt((frames ** 2).mean(axis=1)) > 300).mean() > 0.5


def test_the_language_chooses_the_voice(espeak):
    text = "Paris, Montreal, Bruxelles."
    french = espeak.synthesize_sentence(text, "fr")
    english = espeak.synthesize_sentence(text, "en")
    assert not numpy.array_equal(french[: len(english)], english[: len(french)])
    assert abs(len(french) - len(english)) > espeak.sample_rate * 0.05  # not the same speech
    # And back: the French voice again, not English left over from the switch.
    again = espeak.synthesize_sentence(text, "fr")
    assert abs(len(again) - len(french)) < 0.01 * len(french)


def test_language_tags_resolve_to_installed_voices(espeak):
    assert espeak.resolve_language("fr") == "fr"
    assert espeak.resolve_language("fr-CA") == "fr"  # no Canadian voice: French
    assert espeak.resolve_language("en_US") == "en-us"
    assert espeak.resolve_language("EN") == "en"
    assert espeak.resolve_language("zz") is None
    assert espeak.resolve_language("") is None


def _with_flags(text: str, language: str, flags: int) -> numpy.ndarray:
    """What libespeak-ng says for `text` with other flags (to show what ours avoid)."""
    lib = library()
    with lib.lock:
        lib.synthesize("x", language, 150)  # select the voice and rate
        data = text.encode() + b"\0"
        lib._samples = []
        lib._budget = 60 * lib.sample_rate
        assert lib.lib.espeak_Synth(data, len(data), 0, 1, 0, flags, lib.ffi.NULL,
                                    lib.ffi.NULL) == EE_OK
        out = numpy.frombuffer(b"".join(lib._samples), dtype=numpy.int16)
        lib._samples = []
        return out


def test_ssml_in_a_mail_is_read_as_text_not_obeyed(espeak):
    hostile = 'Hello <break time="20s"/> there <audio src="file:///etc/passwd">x</audio>'
    ours = espeak.synthesize_sentence(hostile, "en")
    obeyed = _with_flags(hostile, "en", CHARS_UTF8 | 0x10)  # espeakSSML
    # With SSML the break alone is 20 s of silence; read as text it is a few seconds of speech.
    assert len(obeyed) / espeak.sample_rate > 20
    assert len(ours) / espeak.sample_rate < 12
    assert rms(ours) > 0.03


def test_phoneme_brackets_are_read_as_text(espeak):
    text = "[[h@l'oU w'3:ld]]"
    ours = espeak.synthesize_sentence(text, "en")
    as_phonemes = _with_flags(text, "en", CHARS_UTF8 | 0x100)  # espeakPHONEMES
    assert not numpy.array_equal(ours[: len(as_phonemes)], as_phonemes[: len(ours)])


def test_nul_and_control_characters_do_not_cut_or_break_synthesis(espeak):
    whole = espeak.synthesize_sentence("one two three four five six", "en")
    with_nul = espeak.synthesize_sentence("one two three\0 four five six", "en")
    # A NUL would end the C string at "three": about half the speech.
    assert len(with_nul) > 0.8 * len(whole)
