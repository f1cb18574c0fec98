"""Mail read aloud as .sln chunks: streaming, interleaving calls, cleanup, faults."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time

import pytest

from mailcall.playback import TELEPHONE_RATE
from mailcall.speech import NoVoice, Speaker, SpeechFailed, SpeechUnavailable

from .conftest import read_sln, rms

MAIL = " ".join(f"Ceci est la phrase numéro {n} du message, lue à voix haute." for n in range(30))


@pytest.fixture
def speaker(espeak) -> Speaker:
    return Speaker(espeak)


def sln_files(folder):
    return sorted(folder.glob("*.sln"))


async def test_the_first_chunk_is_ready_before_the_mail_is_spoken(speaker, tmp_path):
    chunks = []
    async with contextlib.aclosing(speaker.speak(MAIL, "fr", tmp_path)) as stream:
        async for chunk in stream:
            if not chunks:
                # Only the sentences in flight exist yet, not the 30 of the mail.
                assert len(sln_files(tmp_path)) <= 1 + speaker.ahead
            chunks.append(chunk)
    assert [c.index for c in chunks] == list(range(30))
    assert chunks[0].text == "Ceci est la phrase numéro 0 du message, lue à voix haute."
    assert sln_files(tmp_path) == [c.path for c in chunks]
    for chunk in chunks:
        samples = read_sln(chunk.path)
        assert chunk.path.suffix == ".sln" and chunk.stream_name == str(chunk.path)[:-4]
        assert len(samples) == round(chunk.seconds * TELEPHONE_RATE)
        assert rms(samples) > 0.03
        assert oct(chunk.path.stat().st_mode & 0o777) == "0o640"


async def test_chunks_are_8khz_resamplings_of_the_engine_speech(speaker, espeak, tmp_path):
    sentence = "Bonjour, ceci est un essai."
    native = espeak.synthesize_sentence(sentence, "fr")
    async with contextlib.aclosing(speaker.speak(sentence, "fr", tmp_path)) as stream:
        [chunk] = [c async for c in stream]
    # Same speech, same length, at 8000 samples a second: the rate was converted, not relabelled.
    assert chunk.seconds == pytest.approx(len(native) / espeak.sample_rate, rel=0.05)
    assert rms(read_sln(chunk.path)) == pytest.approx(rms(native), rel=0.2)


async def test_the_language_switch_changes_the_speech(speaker, tmp_path):
    text = "342 euros, 17 heures."  # numbers are said in the voice's language
    seconds = {}
    for language in ("fr", "en"):
        folder = tmp_path / language
        folder.mkdir()
        async with contextlib.aclosing(speaker.speak(text, language, folder)) as stream:
            seconds[language] = sum([c.seconds async for c in stream])
    assert seconds["en"] > 1.2 * seconds["fr"], seconds


def test_the_voice_follows_the_mail_then_the_fallback(speaker):
    french = "Bonjour, merci pour votre message, je vous rappelle demain pour la réunion."
    assert speaker.voice_for(None, french, "en") == "fr"
    assert speaker.voice_for(None, "OK", "en") == "en"
    assert speaker.voice_for("fr-CA", "", "en") == "fr"
    assert speaker.voice_for("zz", "", "fr") == "fr"  # no such voice: the user's language
    with pytest.raises(NoVoice, match="no voice for 'zz' nor for the fallback 'xx'"):
        speaker.voice_for("zz", "", "xx")


async def test_no_voice_is_raised_before_any_audio(speaker, tmp_path):
    with pytest.raises(NoVoice):
        async with contextlib.aclosing(speaker.speak("Hello.", "zz", tmp_path,
                                                     fallback="xx")) as stream:
            async for _ in stream:
                pass
    assert not sln_files(tmp_path)


async def test_leaving_early_cancels_and_deletes_what_was_not_played(speaker, tmp_path):
    async with contextlib.aclosing(speaker.speak(MAIL, "fr", tmp_path)) as stream:
        first = await anext(stream)
    await asyncio.sleep(0.3)  # a sentence being rendered when we left finishes, then goes
    assert sln_files(tmp_path) == [first.path]
    assert speaker.scheduler.pending() == 0


async def test_a_hang_up_cancelling_the_task_leaves_only_what_was_played(speaker, tmp_path):
    got = []

    async def listen():
        async with contextlib.aclosing(speaker.speak(MAIL, "fr", tmp_path)) as stream:
            async for chunk in stream:
                got.append(chunk)
                await asyncio.sleep(10)  # "playing"

    task = asyncio.create_task(listen())
    while not got:
        await asyncio.sleep(0.01)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.3)
    assert sln_files(tmp_path) == [got[0].path]


async def test_hostile_megabyte_is_bounded_and_read_as_text(speaker, tmp_path):
    body = ('<speak><break time="30s"/><audio src="/etc/passwd"/></speak>\x1b\u202e '
            "[[h@l'oU]] Lisez ceci. " * 20000)[:1_000_000]
    started = time.perf_counter()
    first = None
    total = 0.0
    count = 0
    async with contextlib.aclosing(speaker.speak(body, "fr", tmp_path, max_chars=3000)) as s:
        async for chunk in s:
            first = first if first is not None else time.perf_counter() - started
            total += chunk.seconds
            count += 1
            assert chunk.seconds < 30  # no SSML break obeyed: every chunk is speech-length
    assert first < 1.0
    assert count < 60 and total < 300
    assert chunk.text == "La suite de ce message n'est pas lue."


async def test_calls_interleave_first_chunks_go_first(speaker, tmp_path):
    events: list[tuple[float, int]] = []

    async def call(n):
        folder = tmp_path / str(n)
        folder.mkdir()
        async with contextlib.aclosing(speaker.speak(MAIL, "fr", folder)) as stream:
            async for chunk in stream:
                events.append((time.monotonic(), chunk.index))
                if chunk.index == 4:
                    break

    await asyncio.gather(*(call(n) for n in range(20)))
    firsts = [t for t, index in events if index == 0]
    thirds = [t for t, index in events if index == 2]
    assert len(firsts) == 20
    # Twenty callers who pressed a key at once each hear their first sentence before
    # anyone's third sentence is rendered: the worker serves the most urgent first.
    assert max(firsts) <= min(thirds)


async def test_a_folder_that_vanishes_fails_with_speech_failed(speaker, tmp_path):
    folder = tmp_path / "call"
    folder.mkdir()
    with pytest.raises(SpeechFailed, match="could not speak into"):
        async with contextlib.aclosing(speaker.speak(MAIL, "fr", folder)) as stream:
            async for _ in stream:
                shutil.rmtree(folder)
    with pytest.raises(SpeechFailed, match="does not exist"):
        async with contextlib.aclosing(speaker.speak(MAIL, "fr", folder)) as stream:
            async for _ in stream:
                pass


def test_engines_must_implement_the_protocol(espeak):
    class Scribe:
        name = "scribe"

        def transcribe(self, wav_path, language):
            return "text"

    with pytest.raises(TypeError, match="StreamingEngine"):
        Speaker(Scribe())  # type: ignore[arg-type]
    with pytest.raises(SpeechUnavailable, match="libespeak-ng1"):
        Speaker.from_engines([Scribe()])
    assert Speaker.from_engines([Scribe(), espeak]).engine is espeak
