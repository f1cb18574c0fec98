"""The built-in handlers against a scripted fake Asterisk answering with recorded replies."""

from __future__ import annotations

import logging
import shutil

import pytest

from mailcall.agi.server import AgiServer
from mailcall.agi.service import collect_handlers
from mailcall.core.decisions.deposits import FaxMessage, VoiceMessage

from .fake_asterisk import RECORDED, Call, run_call
from .harness import DURING_EMMA_ABSENCE, RecordingDepositor, make_runtime, run, serving
from .support import MEDIA


def drive(runtime, call: Call) -> Call:
    async def go():
        async with serving(runtime) as server:
            return await run_call(call, *server.address)
    return run(go())


def dials(call: Call) -> list[str]:
    return [c for c in call.commands if c.startswith("EXEC Dial")]


def test_route_busy_everywhere_ends_in_busy_voicemail(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["busy", "busy", "busy"]))
    # The mobile step only follows no-answer/unavailable: skipped after BUSY.
    assert dials(call) == [
        'EXEC Dial "PJSIP/201,20"\n',
        'EXEC Dial "PJSIP/202,20"\n',
        'EXEC Dial "PJSIP/203&PJSIP/204,20"\n',
    ]
    assert call.commands.count("GET VARIABLE DIALSTATUS\n") == 3
    assert "ANSWER\n" in call.commands
    assert 'STREAM FILE vm-isonphone "#"\n' in call.commands
    (rec,) = [c for c in call.commands if c.startswith("RECORD FILE")]
    spool_rec = tmp_path / "spool" / "rec"
    assert rec == f'RECORD FILE {spool_rec}/vm-1795887768.3 wav "#" 120000 BEEP s=5\n'
    (msg,) = rt.depositor.messages
    assert isinstance(msg, VoiceMessage)
    assert (msg.mailbox, msg.reason, msg.ended_by) == ("alice", "busy", "dtmf")
    assert msg.call_id == "1795887768.3" and msg.caller_number == "+33611111111"
    assert msg.duration_ms == 16432 // 8
    assert rt.depositor.audio[0] == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    assert call.variables_set["MAILCALL_GREETING"] == "busy"
    assert call.variables_set["MAILCALL_VOICEMAIL"] == "alice"
    assert call.variables_set["MAILCALL_RESULT"] == "BUSY"
    assert call.variables_set["MAILCALL_STEP"] == "5"


@pytest.mark.parametrize("outcome, status", [("noanswer", "NOANSWER"),
                                             ("unavailable", "CHANUNAVAIL")])
def test_route_unreachable_tries_mobile_then_backups(tmp_path, outcome, status):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=[outcome] * 4))
    assert dials(call) == [
        'EXEC Dial "PJSIP/201,20"\n',
        'EXEC Dial "PJSIP/+33612345678@trunk,20"\n',
        'EXEC Dial "PJSIP/202,20"\n',
        'EXEC Dial "PJSIP/203&PJSIP/204,20"\n',
    ]
    assert 'STREAM FILE vm-isunavail "#"\n' in call.commands
    (msg,) = rt.depositor.messages
    assert msg.reason == ("no-answer" if outcome == "noanswer" else "unavailable")
    assert call.variables_set["MAILCALL_GREETING"] == "unavailable"
    assert call.variables_set["MAILCALL_RESULT"] == status


def test_route_answer_first_ring(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["answer"]))
    assert call.commands == [
        'SET VARIABLE CHANNEL(language) "fr"\n',
        'EXEC Dial "PJSIP/201,20"\n',
        "GET VARIABLE DIALSTATUS\n",
        'SET VARIABLE MAILCALL_STATUS "ANSWERED"\n',
        'SET VARIABLE MAILCALL_RESULT "ANSWER"\n',
        'SET VARIABLE MAILCALL_STEP "1"\n',
    ]
    assert rt.depositor.messages == []


def test_route_answer_by_backup_and_callee_from_query(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="route?to=201", dials=["noanswer", "noanswer", "answer"]))
    assert len(dials(call)) == 3
    assert call.variables_set["MAILCALL_STATUS"] == "ANSWERED"
    assert call.variables_set["MAILCALL_STEP"] == "3"


def test_route_callee_from_extension_and_group(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(extension="200", dials=["noanswer"]))
    assert dials(call) == ['EXEC Dial "PJSIP/203&PJSIP/204,20"\n']
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "carole"


def test_route_absent_user_goes_to_backup_with_absence_greeting(tmp_path):
    rt = make_runtime(tmp_path, at=DURING_EMMA_ABSENCE)
    call = drive(rt, Call(args=("205",), dials=["noanswer", "noanswer"]))
    assert dials(call)[0] == 'EXEC Dial "PJSIP/202,20"\n'
    (msg,) = rt.depositor.messages
    assert (msg.mailbox, msg.reason) == ("emma", "absent")
    assert call.variables_set["MAILCALL_GREETING"] == "absence"


def test_route_unknown_number(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("999",)))
    assert call.variables_set["MAILCALL_STATUS"] == "NO_ROUTE"
    assert dials(call) == []


def test_hangup_during_dial_stops(tmp_path):
    """Dial ``200 result=-1``, then HANGUP before the DIALSTATUS reply (fake_asterisk docstring)."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), dials=["hangup"]))
    assert dials(call) == ['EXEC Dial "PJSIP/201,20"\n']
    assert call.variables_set["MAILCALL_STATUS"] == "CALLER_HUNGUP"
    assert call.variables_set["MAILCALL_RESULT"] == "CANCEL"
    assert rt.depositor.messages == []


def test_hangup_during_greeting_deposits_missed_call(tmp_path):
    """The dtmf trace's shape: ``200 result=-1 endpos=6080``, HANGUP + 511 on the next command."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["noanswer"], hangup_on_stream=True))
    assert not any(c.startswith("RECORD FILE") for c in call.commands)
    (msg,) = rt.depositor.messages
    assert msg.recording is None and msg.ended_by == "hangup" and msg.mailbox == "carole"
    assert call.variables_set["MAILCALL_STATUS"] == "MISSED_CALL"


def test_hangup_during_recording_still_deposits_the_message(tmp_path):
    """voicemail-hangup's shape: ``200 result=-1 (hangup) endpos=18032``, HANGUP comes later."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["busy"], record="hangup"))
    (msg,) = rt.depositor.messages
    assert msg.ended_by == "hangup"
    assert msg.recording == call.recorded_to[0]
    assert rt.depositor.audio[0] == (MEDIA / "voicemail-hangup-end.wav").read_bytes()
    assert msg.duration_ms == 18032 // 8
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"


def test_refused_record_command_still_deposits(tmp_path, caplog):
    """RECORD FILE answered 520 (basic.jsonl's usage error): what was written is kept."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["busy"], record="refused"))
    (msg,) = rt.depositor.messages
    assert msg.ended_by == "error"
    assert msg.recording == call.recorded_to[0]
    assert rt.depositor.audio[0] == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    assert "a command failed; depositing what was recorded" in caplog.text


def test_empty_recording_is_a_missed_call(tmp_path):
    rt = make_runtime(tmp_path)
    drive(rt, Call(args=("203",), dials=["busy"], record="empty"))
    (msg,) = rt.depositor.messages
    assert msg.recording is None


def test_deposit_failure_keeps_recording_and_says_so(tmp_path, caplog):
    rt = make_runtime(tmp_path, depositor=RecordingDepositor(fail=True))
    call = drive(rt, Call(args=("203",), dials=["busy"]))
    assert call.variables_set["MAILCALL_STATUS"] == "DEPOSIT_FAILED"
    kept = call.recorded_to[0]
    assert (tmp_path / "spool" / "rec" / kept.rsplit("/", 1)[1]).is_file()
    assert "deposit FAILED" in caplog.text and kept in caplog.text


def test_direct_voicemail_plays_personal_greeting(tmp_path):
    rt = make_runtime(tmp_path)
    personal = tmp_path / "greetings" / "alice" / "busy"
    personal.parent.mkdir(parents=True)
    shutil.copyfile(MEDIA / "voicemail-dtmf-end.wav", personal.with_suffix(".wav"))
    call = drive(rt, Call(script="voicemail", args=("alice", "busy"),
                          existing_files={str(personal)}))
    assert f'STREAM FILE {personal} "#"\n' in call.commands
    assert not any("vm-isonphone" in c for c in call.commands)
    (msg,) = rt.depositor.messages
    assert (msg.mailbox, msg.reason) == ("alice", "direct")


def test_voicemail_refuses_ungranted_greeting_and_unknown_mailbox(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="voicemail?mailbox=carole&greeting=busy"))
    assert 'STREAM FILE vm-isunavail "#"\n' in call.commands  # carole has no busy greeting
    call = drive(rt, Call(script="voicemail?mailbox=../../etc"))
    assert call.variables_set["MAILCALL_STATUS"] == "NO_MAILBOX"


FAX_CALL_ID = "1795887828.27"


def _fax_call(path: str, status: list[str] | None = None) -> Call:
    variables = dict(RECORDED.fax_vars)
    if status is not None:
        variables["FAXSTATUS"] = status
    return Call(script=f"fax?mailbox=alice&file={path}", variables=variables,
                uniqueid=FAX_CALL_ID)


def test_fax_received(tmp_path):
    rt = make_runtime(tmp_path)
    rec = tmp_path / "spool" / "rec"
    rec.mkdir(parents=True)
    tif = rec / f"fax-{FAX_CALL_ID}.tif"  # the dialplan's MAILCALL_FAXFILE for this call
    shutil.copyfile(MEDIA / "fax-received-g3.tif", tif)
    call = drive(rt, _fax_call(str(tif)))
    for name in ("FAXSTATUS", "FAXERROR", "FAXPAGES", "FAXBITRATE", "FAXRESOLUTION",
                 "REMOTESTATIONID"):
        assert f"GET VARIABLE {name}\n" in call.commands
    (msg,) = rt.depositor.messages
    assert isinstance(msg, FaxMessage)
    assert (msg.status, msg.pages, msg.bitrate, msg.resolution) == ("SUCCESS", 1, 14400,
                                                                    "8031x7700")
    assert msg.tiff == str(tif.resolve()) and msg.station_id == ""
    assert call.variables_set["MAILCALL_STATUS"] == "FAX"


def test_fax_outside_spool_is_refused_but_reported(tmp_path):
    rt = make_runtime(tmp_path)
    (tmp_path / "spool" / "rec").mkdir(parents=True)
    call = drive(rt, _fax_call(f"{tmp_path}/spool/rec/../../secret.tif"))
    (msg,) = rt.depositor.messages
    assert msg.status == "FAILED" and msg.tiff is None and "not this call's" in msg.error
    assert call.variables_set["MAILCALL_STATUS"] == "FAX_FAILED"


def test_fax_failure_is_deposited(tmp_path):
    rt = make_runtime(tmp_path)
    drive(rt, _fax_call("", status=["200 result=1 (FAILED)\n"]))
    (msg,) = rt.depositor.messages
    assert msg.status == "FAILED" and msg.tiff is None


def test_greeting_recorded_after_pin(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="greeting", callerid="201", get_data=["1111", "2468", "2"]))
    assert call.commands.count("GET DATA agent-pass 5000 12\n") == 2
    assert 'STREAM FILE auth-incorrect ""\n' in call.commands
    final = tmp_path / "greetings" / "alice" / "busy.wav"
    assert final.read_bytes() == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert call.recorded_to[0] != str(final)  # recorded under a temporary name
    assert call.variables_set["MAILCALL_STATUS"] == "GREETING_SAVED"
    assert [p.name for p in final.parent.iterdir()] == ["busy.wav"]


def test_greeting_kind_not_granted_and_bad_pin(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="greeting?user=alice", get_data=["0000", "0000", "0000"]))
    assert call.variables_set["MAILCALL_STATUS"] == "AUTH_FAILED"
    assert not (tmp_path / "greetings").exists()


def test_greeting_hangup_during_recording_keeps_old(tmp_path):
    rt = make_runtime(tmp_path)
    final = tmp_path / "greetings" / "alice" / "unavailable.wav"
    final.parent.mkdir(parents=True)
    final.write_bytes(b"old greeting")
    call = drive(rt, Call(script="greeting", args=("alice",), get_data=["2468", "1"],
                          record="hangup"))
    assert final.read_bytes() == b"old greeting"
    assert call.variables_set["MAILCALL_STATUS"] == "GREETING_NOT_SAVED"
    assert [p.name for p in final.parent.iterdir()] == ["unavailable.wav"]


def test_unknown_script_and_crashing_handler(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    rt = make_runtime(tmp_path)

    async def boom(session, runtime):
        raise ZeroDivisionError("handler bug")

    async def go():
        handlers = collect_handlers(rt) | {"boom": boom}
        server = AgiServer(rt, handlers, host="127.0.0.1", port=0)
        await server.start()
        try:
            a = await run_call(Call(script="nosuch?x=1"), *server.address)
            b = await run_call(Call(script="boom"), *server.address)
            c = await run_call(Call(args=("201",), dials=["answer"]), *server.address)
        finally:
            await server.stop(1.0)
        return a, b, c

    a, b, c = run(go())
    assert a.variables_set == {"MAILCALL_STATUS": "UNKNOWN_SCRIPT"}
    assert b.variables_set == {"MAILCALL_STATUS": "ERROR"}
    assert c.variables_set["MAILCALL_STATUS"] == "ANSWERED"  # the server survived
    assert 'script="nosuch" ' in caplog.text and 'outcome="UNKNOWN_SCRIPT"' in caplog.text
    assert "ZeroDivisionError" in caplog.text


def test_duplicate_script_names_are_a_startup_error(tmp_path):
    from mailcall.agi.service import HandlerConflict
    from mailcall.core.hookspecs import hookimpl

    class Rival:
        @hookimpl
        def mailcall_agi_handlers(self, runtime):
            return {"route": lambda s, r: None}

    rt = make_runtime(tmp_path)
    rt.pm.register(Rival(), name="rival")
    with pytest.raises(HandlerConflict, match=r"'agi'.*'rival'|'rival'.*'agi'"):
        collect_handlers(rt)


def test_voicemail_falls_back_to_generated_greeting(tmp_path):
    rt = make_runtime(tmp_path)
    generated = tmp_path / "greetings" / "carole" / "generated-unavailable"
    generated.parent.mkdir(parents=True)
    shutil.copyfile(MEDIA / "voicemail-dtmf-end.wav", generated.with_suffix(".wav"))
    call = drive(rt, Call(script="voicemail", args=("203",), existing_files={str(generated)}))
    assert f'STREAM FILE {generated} "#"\n' in call.commands
    assert not any("vm-isunavail" in c for c in call.commands)
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "carole"


def test_hook_mailcall_agi_handlers(tmp_path):
    """A third-party plugin adds its own script through the hook; the server dispatches it."""
    from mailcall.core.hookspecs import hookimpl

    class Hello:
        @hookimpl
        def mailcall_agi_handlers(self, runtime):
            async def hello(session, runtime):
                await session.set_status("HELLO", caller=session.env.callerid)
                return "HELLO"
            return {"hello": hello}

    rt = make_runtime(tmp_path)
    rt.pm.register(Hello(), name="hello-plugin")
    handlers = collect_handlers(rt)
    assert {"route", "voicemail", "fax", "greeting", "hello"} <= set(handlers)
    call = drive(rt, Call(script="hello?x=1", callerid="+33611111111"))
    assert call.variables_set == {"MAILCALL_STATUS": "HELLO", "MAILCALL_CALLER": "+33611111111"}


def test_connection_lost_during_recording_still_deposits(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["busy"], record="drop"))
    (msg,) = rt.depositor.messages
    assert msg.recording == call.recorded_to[0] and msg.ended_by == "hangup"
    assert rt.depositor.audio[0] == (MEDIA / "voicemail-hangup-end.wav").read_bytes()
    assert msg.duration_ms == (36108 - 44) // 16
    assert 'outcome="VOICEMAIL"' in caplog.text


def test_stopping_server_still_deposits_a_message_being_recorded(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    rt = make_runtime(tmp_path)

    async def go():
        import asyncio

        server = AgiServer(rt, collect_handlers(rt), host="127.0.0.1", port=0)
        await server.start()
        task = asyncio.create_task(run_call(Call(args=("203",), dials=["busy"], record="stall"),
                                            *server.address))
        for _ in range(200):
            await asyncio.sleep(0.01)
            if list((tmp_path / "spool" / "rec").glob("*.wav")):
                break
        await server.stop(0.1)
        return await task

    call = run(go())
    (msg,) = rt.depositor.messages
    assert msg.recording == call.recorded_to[0]
    assert rt.depositor.audio[0] == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert 'outcome="CANCELLED"' in caplog.text


def test_service_starts_from_runtime_settings(tmp_path):
    """The mailcall_services object listens where the settings say, and stops cleanly."""
    from mailcall.agi.service import AgiService
    from mailcall.core.policy.section_keys import parse_listen
    from mailcall.plugins import agi as agi_plugin

    rt = make_runtime(tmp_path)
    rt.overrides["agi_listen"] = "127.0.0.1:0"
    rt.overrides["max_agi_sessions"] = 7
    (service,) = agi_plugin.mailcall_services(runtime=rt)
    assert isinstance(service, AgiService) and service.name == "agi"

    async def go():
        await service.start()
        server = service.server
        call = await run_call(Call(args=("201",), dials=["answer"]), *server.address)
        limits = (server.max_sessions, server.line_limit, server.backlog)
        await service.stop(1.0)
        return call, limits

    call, limits = run(go())
    assert call.variables_set["MAILCALL_STATUS"] == "ANSWERED"
    assert limits == (7, 2048, 2048)
    assert parse_listen("[::1]:4573") == ("::1", 4573)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen("localhost")


def test_route_obeys_plugin_rules_like_route_explain(tmp_path):
    """A third-party routing rule changes the live call exactly as it changes --explain."""
    from mailcall.core.decisions.plans import Hangup
    from mailcall.core.hookspecs import hookimpl

    class NightService:
        name = "night-service"
        description = "test rule: nobody is rung"
        order = 150  # after the callee is known, before anyone rings

        def apply(self, ctx):
            ctx.finish(Hangup(why="night service"))

    class Plugin:
        @hookimpl
        def mailcall_call_rules(self):
            return [NightService()]

    rt = make_runtime(tmp_path)
    rt.pm.register(Plugin(), name="night")
    call = drive(rt, Call(args=("201",)))
    assert dials(call) == []
    assert call.variables_set["MAILCALL_STATUS"] == "HANGUP"
    assert call.variables_set["MAILCALL_STEP"] == "1"
