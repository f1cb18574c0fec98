"""Generated greetings: spoken by the speech engines, once, in the user's language."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import soundfile

from mailcall.core import contracts
from mailcall.core.decisions.greeting_text import greeting_text
from mailcall.core.errors import PolicyInvalid
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.policy.load import compile_text, load_policy
from mailcall.plugins.greetings import generate_greetings

from .conftest import EXAMPLE

NOW = datetime(2026, 11, 28, tzinfo=UTC)


def test_hook_mailcall_speech_engines(tmp_path):
    pm = make_plugin_manager()
    engines = [e for batch in pm.hook.mailcall_speech_engines() for e in batch]
    assert [e.name for e in engines] == ["espeak-ng"], "apt-get install espeak-ng sox"
    out = tmp_path / "hello.wav"
    assert engines[0].synthesize("Bonjour, ceci est un essai.", "fr", str(out))
    info = soundfile.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16")
    assert 1.0 < info.duration < 10
    assert engines[0].synthesize("hello", "zz", str(tmp_path / "x.wav")) is False  # no voice


def test_greetings_are_generated_once_and_follow_the_absence(tmp_path):
    pm = make_plugin_manager()
    engines = [e for batch in pm.hook.mailcall_speech_engines() for e in batch]
    policy = load_policy(EXAMPLE)
    written = generate_greetings(policy, engines, tmp_path, NOW)
    # 5 users x (unavailable, busy) + emma's absence greeting.
    assert len(written) == 11
    assert (tmp_path / "emma" / "generated-absence.txt").read_text().startswith(
        "Emma Laurent sera de retour le 13/12. En cas d'urgence, appelez Bernard Petit, 202.")
    assert soundfile.info(tmp_path / "emma" / "generated-absence.wav").duration > 3
    assert generate_greetings(policy, engines, tmp_path, NOW) == []
    after = datetime(2026, 12, 20, tzinfo=UTC)   # absence over: nothing new, nothing spoken
    assert generate_greetings(policy, engines, tmp_path, after) == []
    assert greeting_text(policy, "emma", "absence", after) is None


def test_greeting_language_follows_the_user():
    policy = load_policy(EXAMPLE)
    assert greeting_text(policy, "david", "busy", NOW) == (
        "David Leroy is on another call. Please leave a message after the tone.")
    assert "ne peut pas vous répondre" in greeting_text(policy, "carole", "unavailable", NOW)


TRANSCRIBING = """
[organisation]
name = "T"
domain = "t.example"
[profiles.scribe.features]
transcription = true
[users.a]
name = "A"
email = "a@t.example"
profile = "scribe"
"""


def test_transcription_is_refused_while_nothing_transcribes():
    """Issue 11: no code path transcribes a voicemail, so the ``Transcriber`` contract is
    gone and granting transcription is refused even with a plugin whose engine offers a
    ``transcribe`` method (before, such a plugin made the check pass for nothing)."""
    assert not hasattr(contracts, "Transcriber")
    pm = make_plugin_manager()
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(TRANSCRIBING, pm=pm)
    assert "profiles.scribe.features.transcription: granted, but mailcall cannot transcribe" \
        in str(exc.value)

    class Scribe:
        name = "scribe"

        def synthesize(self, text, language, out_path):
            return False

        def transcribe(self, wav_path, language):
            return "text"

    class Plugin:
        @hookimpl
        def mailcall_speech_engines(self):
            return [Scribe()]

    pm.register(Plugin())
    with pytest.raises(PolicyInvalid, match="set transcription = false"):
        compile_text(TRANSCRIBING, pm=pm)


def test_stale_absence_greeting_is_removed(tmp_path):
    pm = make_plugin_manager()
    engines = [e for batch in pm.hook.mailcall_speech_engines() for e in batch]
    policy = load_policy(EXAMPLE)
    generate_greetings(policy, engines, tmp_path, NOW)
    assert (tmp_path / "emma" / "generated-absence.wav").exists()
    generate_greetings(policy, engines, tmp_path, datetime(2026, 12, 20, tzinfo=UTC))
    assert not (tmp_path / "emma" / "generated-absence.wav").exists()
    assert not (tmp_path / "emma" / "generated-absence.txt").exists()


def test_a_failing_engine_is_reported_not_raised(tmp_path, caplog):
    from mailcall.plugins.speech import EspeakEngine

    engine = EspeakEngine(library_name="libespeak-ng-missing.so.1")
    assert engine.synthesize("Bonjour", "fr", str(tmp_path / "x.wav")) is False
    assert "speaking a greeting failed" in caplog.text
