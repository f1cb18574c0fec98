"""Calls that end in voicemail, on the real Asterisk, read back from the real mailbox.

Each test places a real SIP call (sipp) through the docs' dialplan into
`mailcall serve`, and checks both ends: what Asterisk did (its log: the Dial
steps, the prompts played and their language, every AGI line) and what
reached the user's mailbox over IMAP (folder, headers, the decoded audio).
"""

from __future__ import annotations

import re
import time

from tests.support.sipp import Hangup, Pause, Speak

from .checks import agi_rx, agi_tx, assert_speech_length, audio, body_text, leave_message, played


def test_busy_phone_then_backup_then_voicemail_with_the_busy_greeting(live):
    """Alice's phone answers 486, her backup Bernard rings out (5 s), the caller
    hears Alice's *busy* greeting and leaves a message, which is filed in her
    Voicemail folder as Opus (her profile's first format)."""
    alice = live.phone("201", "busy")
    bernard = live.phone("202", "ringout")
    caller = live.call("+33140000201", leave_message(live.media.speech),
                       from_user="+33611111111", from_name="Client Dupont")
    assert caller.final_code() == 200

    log = live.asterisk_log()
    rx = agi_rx(log)
    dials = [line for line in rx if line.startswith("EXEC Dial")]
    assert dials == ['EXEC Dial "PJSIP/201,5"', 'EXEC Dial "PJSIP/202,5"'], rx
    assert "Everyone is busy/congested" in log and "Nobody picked up in 5000 ms" in log
    assert len(alice.requests("INVITE")) == 1 and len(bernard.requests("CANCEL")) == 1
    greeting = [f for f, _lang in played(log) if "/greetings/" in f]
    assert greeting and greeting[0].endswith("/greetings/alice/generated-busy.slin"), played(log)
    assert 'SET VARIABLE MAILCALL_GREETING "busy"' in rx
    assert 'SET VARIABLE MAILCALL_STATUS "VOICEMAIL"' in rx
    assert re.search(r"AGI Tx >> 200 result=35 \(dtmf\) endpos=\d+", log)  # ended by '#'

    [msg] = live.mail("alice", "Voicemail")
    assert msg["Message-Context"] == "voice-message"
    assert "Client Dupont" in msg["Subject"] and "+33611111111" in msg["Subject"]
    assert msg["From"].addresses[0].display_name == "Client Dupont"
    assert "the line was busy" in body_text(msg)
    kind, seconds, level = audio(msg)
    assert kind == "audio/ogg"
    assert_speech_length(seconds, live.media.speech_seconds())
    assert level > 0.01, "the recording is silence: the caller's RTP did not reach it"
    assert live.all_mail("alice") == {"INBOX": 0, "Voicemail": 1}


def test_absent_user_gets_the_absence_greeting(live):
    """Emma is away (policy absence, backup Bernard): her phone is not rung, Bernard's
    is, then the caller hears Emma's *absence* greeting; the mail says she is away."""
    bernard = live.phone("202", "ringout")
    emma = live.phone("205", "answer")
    live.call("+33140000205", leave_message(live.media.speech), from_name="Client Durand")

    log = live.asterisk_log()
    rx = agi_rx(log)
    assert [line for line in rx if line.startswith("EXEC Dial")] == ['EXEC Dial "PJSIP/202,5"']
    assert not emma.requests("INVITE") and len(bernard.requests("INVITE")) == 1
    greeting = [f for f, _lang in played(log) if "/greetings/" in f]
    assert greeting == [f"{live.greetings}/emma/generated-absence.slin"], played(log)
    assert 'SET VARIABLE MAILCALL_GREETING "absence"' in rx

    [msg] = live.mail("emma", "Voicemail")
    assert "the recipient is away" in body_text(msg)
    assert "Client Durand" in msg["Subject"]
    _kind, seconds, level = audio(msg)
    assert_speech_length(seconds, live.media.speech_seconds())
    assert level > 0.01


def test_caller_hanging_up_while_recording_still_leaves_the_message(live):
    """The caller speaks for 3 s of a longer sentence and hangs up without '#':
    RECORD FILE ends with the hang-up and the 3 s are delivered (WAV, Carole's
    profile), not a missed call."""
    live.phone("203", "busy")
    steps = [*leave_message(live.media.long_speech, end="")[:3],
             Speak(live.media.long_speech, for_ms=3000), Hangup()]
    live.call("+33140000203", steps, from_name="Client Martin")

    log = live.asterisk_log()
    assert re.search(r"AGI Tx >> 200 result=-1 \(hangup\) endpos=\d+", log), agi_tx(log)
    [msg] = live.mail("carole", "Voicemail")
    assert msg["Subject"].startswith("Voicemail from Client Martin")
    kind, seconds, level = audio(msg)
    assert kind in ("audio/wav", "audio/x-wav")
    assert_speech_length(seconds, 3.0)
    assert level > 0.01
    assert "Missed call" not in msg["Subject"]
    live.wait_idle()
    assert "outcome=\"VOICEMAIL\"" in live.mailcall_log()


def test_recording_is_removed_from_rec_once_the_spool_has_it(live):
    """§2 of issue 10: nothing removed rec/vm-*.wav after the spool copied it."""
    live.call("*97", leave_message(live.media.speech), via="203")
    live.mail("carole", "Voicemail")
    rec = live.spool / "rec"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and list(rec.glob("vm-*")):
        time.sleep(0.2)
    assert not list(rec.glob("vm-*")), sorted(p.name for p in rec.iterdir())


def test_french_user_hears_french_prompts(live):
    """Fanny's language is fr: Asterisk must play the prompts in French
    (CHANNEL(language)), and her mail is in French."""
    live.call("*97", leave_message(live.media.speech), via="206")
    log = live.asterisk_log()
    prompts = played(log)
    beep = [lang for name, lang in prompts if name.startswith("beep.")]
    assert beep == ["fr"], prompts
    greeting = [lang for name, lang in prompts if "/greetings/fanny/" in name]
    assert greeting == ["fr"], prompts
    [msg] = live.mail("fanny", "Voicemail")
    assert msg["Subject"].startswith("Message vocal de")


def test_no_command_is_sent_after_the_caller_hung_up(live):
    """The caller hangs up during the greeting: mailcall must stop at the HANGUP
    notice (no STREAM FILE answered 511), and the missed call is still mailed."""
    live.call("*97", [Pause(1200), Hangup()], via="203")
    live.wait_idle()
    [msg] = live.mail("carole", "Voicemail")
    assert msg["Subject"].startswith("Missed call from")
    log = live.asterisk_log()
    after = log.split("AGI Tx >> HANGUP", 1)
    assert len(after) == 2, agi_tx(log)
    assert not re.search(r"AGI Tx >> 511", log), [
        line for line in agi_rx(after[1])]
    # Not a bare "511": the log's timestamps (",511"), uniqueids and ports hold digits.
    assert not re.search(r"\b511 (Command|result)", live.mailcall_log())
