"""A greeting recorded by phone (PIN typed as RFC 4733 DTMF), then played to a caller."""

from __future__ import annotations

import soundfile

from tests.support.sipp import AwaitHangup, Dtmf, Pause, Speak

from .checks import SKIP_GAP_MS, agi_rx, assert_speech_length, audio, leave_message, played


def test_greeting_recorded_by_phone_with_the_pin_is_played_to_the_next_caller(live):
    """Alice dials *98 from her phone, types her PIN 2468#, picks 2 (busy) and
    records; the new busy.wav is what the next caller of *96 (her busy voicemail)
    hears, and that caller's message reaches her Voicemail folder."""
    speech = live.media.speech
    steps = [Pause(700), Dtmf("2468#"), Pause(1200), Dtmf("2"), Pause(SKIP_GAP_MS),
             Speak(speech, 300), Dtmf("#"), AwaitHangup(20000)]
    caller = live.call("*98", steps, via="201")
    assert caller.final_code() == 200

    log = live.asterisk_log()
    rx = agi_rx(log)
    assert any(line.startswith("GET DATA agent-pass") for line in rx), rx
    assert any(line.startswith("GET DATA vm-rec-unv") for line in rx), rx
    assert 'SET VARIABLE MAILCALL_STATUS "GREETING_SAVED"' in rx, rx
    assert 'SET VARIABLE MAILCALL_GREETING "busy"' in rx
    assert "AGI Tx >> 200 result=2468" in log  # the digits as Asterisk read them
    saved = live.greetings / "alice" / "busy.wav"
    info = soundfile.info(str(saved))
    assert info.samplerate == 8000
    assert_speech_length(info.duration, live.media.speech_seconds())
    assert not list(saved.parent.glob(".busy.wav.tmp-*")), "temporary file left behind"

    mark = live.ast.mark()
    live.call("*96", leave_message(speech), via="201")
    after = live.ast.log_since(mark)
    greetings = [name for name, _lang in played(after) if "/greetings/" in name]
    assert greetings == [f"{live.greetings}/alice/busy.slin"], played(after)
    [msg] = live.mail("alice", "Voicemail")
    assert "Alice Martin" in msg["Subject"]  # she left herself a message: her caller ID
    _kind, seconds, level = audio(msg)
    assert_speech_length(seconds, live.media.speech_seconds())
    assert level > 0.01

