"""The built-in engine plugin: found through the hook, greetings still written as WAV."""

from __future__ import annotations

import pytest
import soundfile

from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.plugins.speech import EspeakEngine
from mailcall.speech import GreetingEngine, Speaker, StreamingEngine, engines_from

from .conftest import rms


def test_the_hook_offers_espeak_as_a_streaming_engine():
    pm = make_plugin_manager()
    engines = [e for batch in pm.hook.mailcall_speech_engines() for e in batch]
    assert [e.name for e in engines] == ["espeak-ng"]
    assert isinstance(engines[0], StreamingEngine)
    assert isinstance(engines[0], GreetingEngine)
    assert Speaker.from_plugins(pm).engine.name == "espeak-ng"


def test_a_greeting_is_an_8khz_wav_spoken_in_process(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no espeak-ng nor sox binary to run
    out = tmp_path / "greeting.wav"
    assert EspeakEngine().synthesize("Emma Laurent est absente jusqu'au 13 décembre.", "fr",
                                     str(out))
    info = soundfile.info(str(out))
    assert (info.format, info.samplerate, info.channels, info.subtype) == (
        "WAV", 8000, 1, "PCM_16")
    assert 2.0 < info.duration < 8
    samples, _ = soundfile.read(str(out), dtype="int16")
    assert rms(samples) > 0.03


def test_an_engine_that_cannot_load_says_what_to_install(tmp_path, caplog):
    engine = EspeakEngine(library_name="libespeak-ng-missing.so.1")
    assert not engine.available
    assert "apt-get install libespeak-ng1" in engine.problem
    assert engine.synthesize("Bonjour", "fr", str(tmp_path / "x.wav")) is False
    assert "speaking a greeting failed" in caplog.text
    assert not (tmp_path / "x.wav").exists()


def test_engines_are_checked_where_they_are_collected():
    """Issue 11: the hook returns GreetingEngines, checked with isinstance when collected.
    Before, Speaker.from_plugins and the greetings plugin skipped anything else in silence
    (a plugin returning the wrong object just had no voice, and nobody said why)."""
    pm = make_plugin_manager()
    assert [e.name for e in engines_from(pm)] == ["espeak-ng"]

    class Mute:  # a name, but no synthesize: not an engine
        name = "mute"

    class Broken:
        @hookimpl
        def mailcall_speech_engines(self):
            return [Mute()]

    pm.register(Broken())
    with pytest.raises(TypeError, match="returned Mute from mailcall_speech_engines"):
        engines_from(pm)
    with pytest.raises(TypeError, match=r"mailcall\.speech\.GreetingEngine"):
        Speaker.from_plugins(pm)
