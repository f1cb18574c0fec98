"""Hang-ups during the greeting, during Dial and during recording, in the shapes Asterisk sends.

The project rule: never rely on anything the traces in shared/asterisk/traces
do not show. In every recorded hang-up the command that was running answers
normally and the bare ``HANGUP`` line only comes with the reply to the *next*
command (see tests/agi/fake_asterisk.py). The first tests check that the fake
answers with exactly those recorded lines, the others that the handlers do the
right thing with them. The last two use shapes no trace shows (HANGUP before
the Dial reply, HANGUP straight after RECORD FILE's reply): defensive only,
each says why it is plausible.
"""

from __future__ import annotations

from .fake_asterisk import RECORDED, Call
from .harness import make_runtime
from .support import MEDIA, TRACES, load_trace
from .test_handlers import dials, drive

DEAD = "511 Command Not Permitted on a dead channel or intercept routine\n"


def _command_after(call: Call, command_prefix: str) -> str:
    """The command following the first one starting with `command_prefix`."""
    i = next(i for i, c in enumerate(call.commands) if c.startswith(command_prefix))
    return call.commands[i + 1]


# ------------------------------------------------------------ the shapes themselves


def test_fake_uses_the_recorded_lines_for_hangups():
    dtmf = load_trace(TRACES / "dtmf.jsonl").after_env
    vmh = load_trace(TRACES / "voicemail-hangup.jsonl").after_env
    midway = load_trace(TRACES / "hangup-midway.jsonl").after_env
    # Greeting cut: STREAM FILE answers result=-1 with where it stopped; the next
    # command gets HANGUP, then 511 (not dead-safe) ...
    i = dtmf.index(("server", 'STREAM FILE mailcall-greeting "0123456789*#"\n'))
    assert dtmf[i + 1] == ("asterisk", "200 result=-1 endpos=6080\n")
    assert [line for _, line in dtmf[i + 2:i + 5]] == ['SAY DIGITS 1234 ""\n', "HANGUP\n", DEAD]
    assert RECORDED.stream_hangup == ["200 result=-1 endpos=6080\n"]
    assert RECORDED.dead == [DEAD]
    # ... or its ordinary reply (dead-safe GET VARIABLE).
    assert [line for _, line in midway[2:5]] == ["GET VARIABLE CALLERID(num)\n", "HANGUP\n",
                                                 "200 result=1 ()\n"]
    # Recording cut: RECORD FILE says hangup; HANGUP only comes with the next reply.
    j = next(k for k, (d, line) in enumerate(vmh) if line.startswith("RECORD FILE"))
    assert vmh[j + 1] == ("asterisk", "200 result=-1 (hangup) endpos=18032\n")
    assert vmh[j + 2][0] == "server" and vmh[j + 3] == ("asterisk", "HANGUP\n")
    assert RECORDED.record["hangup"] == ["200 result=-1 (hangup) endpos=18032\n"]
    # Dial ended by a hang-up answers result=-1 (dial-answer's reply line).
    assert RECORDED.dial_hungup == ["200 result=-1\n"]


# -------------------------------------------------------------- during the greeting


def test_hangup_during_stock_greeting(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["noanswer"], hangup_on_stream=True))
    # vm-isunavail was cut (result=-1 endpos=6080, the dtmf trace): the caller is gone,
    # so vm-intro is not sent (it met HANGUP + 511 before); the status is left at once.
    assert _command_after(call, "STREAM FILE vm-isunavail").startswith(
        "SET VARIABLE MAILCALL_STATUS")
    assert not any(c.startswith(("STREAM FILE vm-intro", "RECORD FILE")) for c in call.commands)
    (msg,) = rt.depositor.messages
    assert (msg.mailbox, msg.recording, msg.ended_by) == ("carole", None, "hangup")
    assert call.variables_set["MAILCALL_STATUS"] == "MISSED_CALL"


def test_no_prompt_after_the_hangup_notice(tmp_path):
    """Issue 10: after the caller hung up, ``STREAM FILE vm-isonphone`` was still sent
    (answered 511). Busy everywhere, the caller leaves during the personal greeting and
    the HANGUP line follows the cut reply at once, as res_agi writes it."""
    rt = make_runtime(tmp_path)
    personal = tmp_path / "greetings" / "alice" / "busy"
    personal.parent.mkdir(parents=True)
    personal.with_suffix(".wav").write_bytes((MEDIA / "voicemail-dtmf-end.wav").read_bytes())
    call = drive(rt, Call(args=("201",), dials=["busy"] * 3, hangup_on_stream=True,
                          eager_notice=True, existing_files={str(personal)}))
    streams = [c for c in call.commands if c.startswith("STREAM FILE")]
    assert streams == [f'STREAM FILE {personal} "#"\n']  # no vm-isonphone, no vm-intro
    assert not any(c.startswith(("RECORD FILE", "ANSWER", "EXEC")) for c in
                   call.commands[call.commands.index(streams[0]):])
    assert call.dead_answers == 0
    (msg,) = rt.depositor.messages
    assert (msg.mailbox, msg.recording, msg.ended_by) == ("alice", None, "hangup")
    assert call.variables_set["MAILCALL_STATUS"] == "MISSED_CALL"


def test_no_prompt_after_a_cut_playback_even_before_the_notice(tmp_path):
    """The dtmf trace: the notice only comes with the next command's reply. The cut reply
    itself (result=-1, endpos=6080) says the caller is gone: the next command is the
    dead-safe status, not a prompt that would be answered 511."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["busy"] * 3, hangup_on_stream=True))
    assert [c for c in call.commands if c.startswith("STREAM FILE")] == [
        'STREAM FILE vm-isonphone "#"\n']
    assert call.dead_answers == 0
    assert call.variables_set["MAILCALL_STATUS"] == "MISSED_CALL"


def test_greeting_menu_stops_at_the_hangup_notice(tmp_path):
    """A wrong PIN typed, then the caller leaves during auth-incorrect: no goodbye, no
    second PIN prompt."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="greeting", callerid="201", get_data=["1111"],
                          hangup_on_stream=True, eager_notice=True))
    assert [c.split()[2] for c in call.commands if c.startswith(("STREAM", "GET DATA"))] == [
        "agent-pass", "auth-incorrect"]
    assert call.dead_answers == 0


def test_hangup_during_personal_greeting(tmp_path):
    rt = make_runtime(tmp_path)
    personal = tmp_path / "greetings" / "carole" / "unavailable"
    personal.parent.mkdir(parents=True)
    personal.with_suffix(".wav").write_bytes((MEDIA / "voicemail-dtmf-end.wav").read_bytes())
    call = drive(rt, Call(script="voicemail", args=("carole",), hangup_on_stream=True,
                          existing_files={str(personal)}))
    assert f'STREAM FILE {personal} "#"\n' in call.commands
    assert not any(c.startswith("RECORD FILE") for c in call.commands)
    (msg,) = rt.depositor.messages
    assert msg.recording is None and msg.ended_by == "hangup"
    assert call.variables_set["MAILCALL_STATUS"] == "MISSED_CALL"


def test_hangup_just_before_the_greeting(tmp_path):
    """hangup-midway/dtmf: the first command after the hang-up gets HANGUP, then 511."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["noanswer"], hangup_before="STREAM FILE"))
    assert sum(c.startswith("STREAM FILE") for c in call.commands) == 1
    (msg,) = rt.depositor.messages
    assert msg.recording is None and msg.ended_by == "hangup"
    assert call.variables_set["MAILCALL_STATUS"] == "MISSED_CALL"


# ------------------------------------------------------------------- during Dial


def test_hangup_while_the_callee_rings(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["hangup"]))
    assert call.commands[:3] == ['SET VARIABLE CHANNEL(language) "fr"\n',
                                 'EXEC Dial "PJSIP/201,20"\n', "GET VARIABLE DIALSTATUS\n"]
    assert dials(call) == ['EXEC Dial "PJSIP/201,20"\n']  # nobody else is rung
    assert not any(c.startswith(("ANSWER", "STREAM", "RECORD")) for c in call.commands)
    assert call.variables_set["MAILCALL_STATUS"] == "CALLER_HUNGUP"
    assert call.variables_set["MAILCALL_RESULT"] == "CANCEL"
    assert call.variables_set["MAILCALL_STEP"] == "1"
    assert rt.depositor.messages == []


def test_hangup_while_the_backup_rings(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["noanswer", "noanswer", "hangup"]))
    assert len(dials(call)) == 3
    assert call.variables_set["MAILCALL_STATUS"] == "CALLER_HUNGUP"
    assert call.variables_set["MAILCALL_STEP"] == "3"
    assert rt.depositor.messages == []


# -------------------------------------------------------------- during recording


def test_hangup_during_recording_deposits_the_message(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["busy"] * 3, record="hangup"))
    (msg,) = rt.depositor.messages
    assert (msg.mailbox, msg.ended_by) == ("alice", "hangup")
    assert msg.recording == call.recorded_to[0]
    assert rt.depositor.audio[0] == (MEDIA / "voicemail-hangup-end.wav").read_bytes()
    assert msg.duration_ms == 18032 // 8
    # The HANGUP notice came with the reply to the command after RECORD FILE.
    assert _command_after(call, "RECORD FILE") == 'SET VARIABLE MAILCALL_STATUS "VOICEMAIL"\n'
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    assert call.variables_set["MAILCALL_VOICEMAIL"] == "alice"


def test_hangup_between_greeting_and_beep_is_a_missed_call(tmp_path):
    """RECORD FILE sent after the caller left: HANGUP then 511 (dtmf's shape); no file."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["busy"], hangup_before="RECORD FILE"))
    assert call.recorded_to == []
    (msg,) = rt.depositor.messages
    assert msg.recording is None and msg.ended_by == "hangup"
    assert call.variables_set["MAILCALL_STATUS"] == "MISSED_CALL"


# ------------------------------------------------- defensive: shapes no trace shows


def test_defensive_hangup_notice_before_the_dial_reply(tmp_path):
    """Not traced. Plausible: the caller leaves just before mailcall sends Dial. EXEC is
    dead-safe (res_agi.c), so, as GET VARIABLE in hangup-midway, it gets HANGUP and
    then its reply; Dial on a dead channel returns at once."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["hangup-early"]))
    assert dials(call) == ['EXEC Dial "PJSIP/201,20"\n']
    assert call.variables_set["MAILCALL_STATUS"] == "CALLER_HUNGUP"
    assert rt.depositor.messages == []


def test_defensive_hangup_notice_right_after_the_recording(tmp_path):
    """Not traced. Plausible: res_agi's loop writes HANGUP as soon as it reads the hang-up
    frame; a server slow to send its next command could see it before sending."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["busy"], record="hangup-eager"))
    (msg,) = rt.depositor.messages
    assert msg.recording == call.recorded_to[0] and msg.ended_by == "hangup"
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
