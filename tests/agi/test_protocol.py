"""The sans-I/O machine against every recorded trace, fed one byte at a time."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcall.agi.commands import Command, CommandError, Quoted, encode
from mailcall.agi.protocol import (
    NEED_DATA,
    Connection,
    ConnectionClosed,
    EnvironmentReceived,
    HangupNotice,
    LocalProtocolError,
    RemoteProtocolError,
    State,
    Trying,
)
from mailcall.agi.replies import (
    Reply,
    data_result,
    parse_reply_line,
    record_result,
    stream_result,
)

from .support import Trace, all_traces, tokenize

TRACES = {t.name: t for t in all_traces()}
ENV = TRACES["basic"].env_bytes
"""A whole environment block as Asterisk writes it (the shortest ones are refused)."""


def feed_bytewise(conn: Connection, data: bytes) -> list:
    events = []
    for i in range(len(data)):
        conn.receive_data(data[i:i + 1])
        while (ev := conn.next_event()) is not NEED_DATA:
            events.append(ev)
    return events


def run_trace(trace: Trace) -> tuple[Connection, list[tuple[str, list]]]:
    """Drive a Connection through `trace`; return (command line, events after it) pairs."""
    conn = Connection()
    events = feed_bytewise(conn, trace.env_bytes)
    assert len(events) == 1 and isinstance(events[0], EnvironmentReceived)
    steps: list[tuple[str, list]] = []
    for d, line in trace.after_env:
        if d == "server":
            assert conn.send(tokenize(line)) == line.encode()
            steps.append((line, []))
        else:
            evs = feed_bytewise(conn, line.encode())
            if steps:
                steps[-1][1].extend(evs)
            else:
                steps.append(("", evs))
    return conn, steps


def test_all_traces_are_present():
    assert set(TRACES) >= {
        "basic", "dial-answer", "dial-busy", "dial-noanswer", "dial-unavailable", "dtmf",
        "fax-received", "hangup-midway", "hangup-self", "voicemail", "voicemail-hangup",
    }


@pytest.mark.parametrize("name", sorted(TRACES))
def test_trace_bytewise(name):
    trace = TRACES[name]
    conn, steps = run_trace(trace)
    for line, events in steps:
        replies = [e for e in events if isinstance(e, Reply)]
        assert len(replies) == (1 if line else 0), (line, events)
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed(pending=False)


def test_basic_environment():
    conn = Connection()
    (ev,) = feed_bytewise(conn, TRACES["basic"].env_bytes)
    env = ev.environment
    assert env.script == "basic"
    assert env.query == (("lang", "fr"), ("user", "201"))
    assert env.param("user") == "201"
    assert env.args == ("first arg", "second arg")
    assert env.arg(1) == "first arg" and env.arg(3) is None
    assert env.callerid == "+33612345678"
    assert env.calleridname == "Alice Martin"
    assert env.dnid == ""  # "unknown"
    assert env.uniqueid == "1795887765.1"
    assert env.channel == "Local/basic@tests-00000000;2"
    assert env.accountcode == ""
    assert env.extension == "basic" and env.context == "tests" and env.priority == "2"
    assert env.raw["agi_dnid"] == "unknown"


def test_basic_replies():
    _, steps = run_trace(TRACES["basic"])
    by_line = {line.rstrip("\n"): next(e for e in evs if isinstance(e, Reply))
               for line, evs in steps}
    assert by_line["GET VARIABLE CALLERID(num)"].data == "+33612345678"
    assert by_line["GET VARIABLE NO_SUCH_VARIABLE"].result == "0"
    assert by_line["GET VARIABLE NO_SUCH_VARIABLE"].data is None
    assert by_line["GET VARIABLE QUOTED"].data == 'a "quoted" value, with comma'
    assert by_line["GET VARIABLE CALLERID(all)"].data == '"Front Desk" <100>'
    assert by_line["CHANNEL STATUS"].result_int == 4
    assert by_line["NO SUCH COMMAND"].code == 510
    usage = by_line["GET VARIABLE"]
    assert usage.code == 520 and "Proper usage not available" in usage.text


def test_voicemail_typed_results_and_hangup_before_reply():
    _, steps = run_trace(TRACES["voicemail"])
    (rec_reply,) = [e for line, evs in steps if line.startswith("RECORD FILE") for e in evs]
    rec = record_result(rec_reply)
    assert (rec.outcome, rec.digit, rec.endpos) == ("dtmf", "#", 16432)
    found, missing = [
        stream_result(next(e for e in evs if isinstance(e, Reply)))
        for line, evs in steps if line.startswith("STREAM FILE")
    ]
    assert found.played and found.endpos == 37219
    assert not missing.played and missing.endpos == 0
    last_line, last = steps[-1]
    assert last_line == "GET VARIABLE PLAYBACKSTATUS\n"
    assert isinstance(last[0], HangupNotice)
    assert last[1].data == "SUCCESS"


def test_voicemail_hangup_record_outcome():
    conn, steps = run_trace(TRACES["voicemail-hangup"])
    (rec_reply,) = [e for line, evs in steps if line.startswith("RECORD") for e in evs]
    rec = record_result(rec_reply)
    assert (rec.outcome, rec.digit, rec.endpos) == ("hangup", None, 18032)
    assert conn.hungup


def test_dtmf_get_data_and_511():
    conn, steps = run_trace(TRACES["dtmf"])
    (gd,) = [e for line, evs in steps if line.startswith("GET DATA") for e in evs]
    assert data_result(gd).digits == "12"
    say = next(evs for line, evs in steps if line.startswith("SAY DIGITS"))
    assert isinstance(say[0], HangupNotice) and say[1].code == 511
    assert conn.hungup


def test_hangup_line_while_idle_and_at_end():
    conn, _ = run_trace(TRACES["fax-received"])
    assert conn.hungup  # the final HANGUP after the last reply
    assert conn.state is State.IDLE


def test_hangup_notice_in_the_same_read_as_the_reply_is_seen_with_the_reply():
    """dtmf trace: STREAM FILE cut (``result=-1 endpos=6080``), HANGUP right behind it.
    When both are in one read, the machine says hungup as it hands over the reply, so a
    handler resumed by that reply sends no further prompt."""
    conn = Connection()
    feed_bytewise(conn, ENV)
    conn.send(Command(("STREAM", "FILE", "mailcall-greeting", Quoted("0123456789*#"))))
    conn.receive_data(b"200 result=-1 endpos=6080\nHANGUP\n")
    reply = conn.next_event()
    assert isinstance(reply, Reply) and stream_result(reply).cut
    assert conn.hungup  # before the HANGUP event is even pulled
    assert isinstance(conn.next_event(), HangupNotice)
    assert conn.next_event() is NEED_DATA


def test_a_missing_file_is_not_a_cut_playback():
    """voicemail trace: ``result=-1 endpos=0`` is a file Asterisk could not open."""
    (missing,) = [e for line, evs in run_trace(TRACES["voicemail"])[1]
                  if line == 'STREAM FILE no-such-sound-file ""\n' for e in evs]
    result = stream_result(missing)
    assert not result.played and not result.cut
    (cut,) = [e for line, evs in run_trace(TRACES["dtmf"])[1]
              if line.startswith("STREAM FILE") for e in evs if isinstance(e, Reply)]
    assert stream_result(cut).cut


def test_no_pipelining():
    conn = Connection()
    feed_bytewise(conn, ENV)
    conn.send(Command(("ANSWER",)))
    with pytest.raises(LocalProtocolError):
        conn.send(Command(("ANSWER",)))
    conn.receive_data(b"200 result=0\n")
    assert isinstance(conn.next_event(), Reply)
    conn.send(Command(("ANSWER",)))


def test_no_command_before_environment():
    with pytest.raises(LocalProtocolError):
        Connection().send(Command(("ANSWER",)))


def test_multiline_520_and_trying():
    conn = Connection()
    feed_bytewise(conn, ENV)
    conn.send(Command(("GET", "VARIABLE")))
    evs = feed_bytewise(conn, b"520-Invalid command syntax.  Proper usage follows:\n"
                              b"Usage: GET VARIABLE <variablename>\n"
                              b"520 End of proper usage.\n")
    assert len(evs) == 1 and evs[0].code == 520
    assert "Usage: GET VARIABLE" in evs[0].text
    conn.send(Command(("GOSUB", "ctx", "s", "1")))
    evs = feed_bytewise(conn, b"100 result=0 Trying...\n200 result=0 Gosub complete\n")
    assert isinstance(evs[0], Trying)
    assert evs[1].code == 200 and evs[1].result == "0"


@pytest.mark.parametrize("data, why", [
    (b"hello world\n", "not an agi_"),
    (b"x" * 20000, "longer than"),
    (ENV + b"200 result=1\n", "unsolicited"),
    (b"agi_network: yes\n\n", "ends after agi_network"),
    (b"agi_request: agi://x/y\n", "starts with agi_request"),
    (b"\n", "empty environment block"),
])
def test_bad_input(data, why):
    conn = Connection()
    conn.receive_data(data)
    with pytest.raises(RemoteProtocolError, match=why):
        while conn.next_event() is not NEED_DATA:
            pass
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_a_second_copy_of_a_name_asterisk_does_not_write_is_its_text():
    """A caller can write ``\nagi_x: 1\nagi_x: 2`` in a value: that is no reason to
    refuse the call (issue 10 §2); the second line is text of the first."""
    conn = Connection()
    conn.receive_data(ENV.replace(b"\n\n", b"\nagi_x: 1\nagi_x: 2\n\n"))
    event = conn.next_event()
    assert isinstance(event, EnvironmentReceived)
    assert event.environment.raw["agi_x"] == "1\nagi_x: 2"
    assert event.environment.args == ("first arg", "second arg")


def test_env_line_count_bounded():
    conn = Connection()
    head = TRACES["dial-busy"].env_bytes[:-1]  # without the blank line, no arguments yet
    conn.receive_data(head + b"".join(b"agi_arg_%d: x\n" % i for i in range(1, 300)))
    with pytest.raises(RemoteProtocolError, match="longer than 256 lines"):
        while conn.next_event() is not NEED_DATA:
            pass


@pytest.mark.parametrize("data", [b"", b"agi_network: yes\n", b"agi_net"])
def test_early_eof(data):
    conn = Connection()
    conn.receive_data(data)
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed"):
        while conn.next_event() is not NEED_DATA:
            pass


def test_eof_with_pending_command():
    conn = Connection()
    conn.receive_data(ENV)
    conn.next_event()
    conn.send(Command(("ANSWER",)))
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed(pending=True)


def test_garbage_reply():
    conn = Connection()
    conn.receive_data(ENV)
    conn.next_event()
    conn.send(Command(("ANSWER",)))
    conn.receive_data(b"OK fine\n")
    with pytest.raises(RemoteProtocolError, match="not an AGI reply"):
        conn.next_event()


# ------------------------------------------------------------------ serializer

def test_quoting():
    cmd = Command(("SET", "VARIABLE", "X", Quoted('a "b" \\ c')))
    assert encode(cmd) == b'SET VARIABLE X "a \\"b\\" \\\\ c"\n'


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\x00b", "\n"])
def test_newline_never_reaches_the_wire(bad):
    with pytest.raises(CommandError):
        encode(Command(("SET", "VARIABLE", "X", Quoted(bad))))
    with pytest.raises(CommandError):
        encode(Command(("GET", "VARIABLE", bad)))


def test_bare_word_needing_quotes_is_refused():
    with pytest.raises(CommandError, match="needs quoting"):
        encode(Command(("GET", "VARIABLE", "a b")))


def test_arg_and_line_limits():
    encode(Command(tuple(["NOOP"] + ["x"] * 126)))
    with pytest.raises(CommandError, match="at most 127"):
        encode(Command(tuple(["NOOP"] + ["x"] * 127)))
    with pytest.raises(CommandError, match="at most 127"):  # quoted words skip Asterisk's check
        encode(Command(tuple(["VERBOSE"] + [Quoted("x")] * 127)))
    with pytest.raises(CommandError, match="2047"):
        encode(Command(("VERBOSE", Quoted("x" * 2040))))
    assert encode(Command(("VERBOSE", Quoted("x" * 2040))), line_limit=8192)


def test_unencodable_text_is_a_command_error():
    with pytest.raises(CommandError, match="not valid text"):
        encode(Command(("SET", "VARIABLE", "X", Quoted("\udcff"))))


def test_environment_is_read_only_and_follows_the_argument_numbering():
    from mailcall.agi.environment import build_environment

    env = build_environment({"agi_network_script": "route?to=201", "agi_callerid": "unknown",
                             "agi_arg_1": "201", "agi_arg_3": "orphan"})
    assert (env.script, env.param("to"), env.callerid, env.channel) == ("route", "201", "", "")
    assert env.args == ("201",) and env.arg(1) == "201" and env.arg(3) is None
    assert env.raw["agi_callerid"] == "unknown"
    with pytest.raises(AttributeError):
        env.channel = "PJSIP/evil"  # type: ignore[misc]
    with pytest.raises(TypeError):
        env.raw["agi_channel"] = "x"  # type: ignore[index]


def test_encoded_commands_are_reused_within_a_bound():
    """The bytes of a checked command are remembered; refused ones never are."""
    from mailcall.agi import commands

    commands._encoded.cache_clear()
    first = encode(Command(("GET", "VARIABLE", "DIALSTATUS")))
    assert encode(Command(("GET", "VARIABLE", "DIALSTATUS"))) is first
    assert commands._encoded.cache_info().hits == 1
    with pytest.raises(CommandError):
        encode(Command(("SET", "VARIABLE", "X", Quoted("a\nHANGUP"))))
    assert commands._encoded.cache_info().currsize == 1  # the refused one is not kept
    for n in range(5000):
        assert encode(Command(("GET", "VARIABLE", f"V{n}"))) == f"GET VARIABLE V{n}\n".encode()
    info = commands._encoded.cache_info()
    assert info.currsize <= info.maxsize == 4096
    with pytest.raises(CommandError):  # an unhashable word still gets the clear error
        encode(Command((["GET"],)))  # type: ignore[arg-type]
    encode(Command(("SET", "VARIABLE", "X", Quoted("v"))))
    with pytest.raises(CommandError):  # equal to the cached Quoted("v"), still refused
        encode(Command(("SET", "VARIABLE", "X", ("v",))))  # type: ignore[arg-type]


def test_parsed_replies_are_reused_within_a_bound():
    """Short reply lines are parsed once; long ones every time; the table stays bounded."""
    from mailcall.agi import replies

    replies._parsed.cache_clear()
    line = "200 result=1 (NOANSWER)"
    first = replies.parse_reply_line(200, line)
    assert first == Reply(200, "1", "NOANSWER", (), line)
    assert replies.parse_reply_line(200, line) is first
    long_line = "200 result=1 (" + "x" * 100 + ")"
    assert replies.parse_reply_line(200, long_line).data == "x" * 100
    assert replies._parsed.cache_info().currsize == 1  # the long line is not kept
    for n in range(2000):
        assert replies.parse_reply_line(200, f"200 result={n}").result == str(n)
    info = replies._parsed.cache_info()
    assert info.currsize <= info.maxsize == 1024


# ------------------------------------------------------- hostile reply lines

_REFERENCE = re.compile(r"result=(\S*)(?: \((.*)\))?((?: [A-Za-z_]+=\S*)*)\Z", re.DOTALL)
"""The reply grammar as one regex: the specification the linear parser must follow."""


def _by_reference(text: str):
    m = _REFERENCE.match("result=" + text)
    if m is None:
        return None
    result, data, tail = m.groups()
    return result, data, tuple(tuple(p.split("=", 1)) for p in tail.split(" ") if p)


@settings(max_examples=3000)
@given(st.text(alphabet=st.sampled_from(list("() =a_1\t\u2028x")), max_size=24))
def test_reply_parser_follows_the_reply_grammar(text):
    from mailcall.agi.replies import _result_data_params

    assert _result_data_params(text) == _by_reference(text)


def test_reply_full_of_parentheses_and_pairs_parses_in_one_pass():
    """A backtracking regex took ~0.5 s on this line; the parser reads it once."""
    data = ") a=b" * 3000 + " x"
    reply = parse_reply_line(200, f"200 result=1 ({data}) endpos=7")
    assert (reply.result, reply.data, reply.params) == ("1", data, (("endpos", "7"),))


def _awaiting() -> Connection:
    conn = Connection()
    conn.receive_data(ENV)
    conn.next_event()
    conn.send(Command(("ANSWER",)))
    return conn


@pytest.mark.parametrize("line", [
    "\u00b2\u00b2\u00b2 x",  # superscripts: isdigit() says yes, int() raises ValueError
    "\u0663\u0660\u0660 result=0",  # Arabic-Indic 300: int() would read it
    "\uff12\uff10\uff10 result=0",  # full-width 200: int() would read it
])
def test_reply_code_must_be_ascii_digits(line):
    """Only ASCII digits make an AGI code; anything else is bad input, not a crash."""
    conn = _awaiting()
    conn.receive_data(line.encode() + b"\n")
    with pytest.raises(RemoteProtocolError, match="not an AGI reply"):
        conn.next_event()


@settings(max_examples=500)
@given(st.lists(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"),
                        max_size=40), min_size=1, max_size=4))
def test_any_reply_lines_give_events_or_a_protocol_error(lines):
    """Whatever Asterisk (or an impostor) answers: events, or RemoteProtocolError, nothing else."""
    conn = _awaiting()
    conn.receive_data("".join(f"{x}\n" for x in lines).encode())
    try:
        while conn.next_event() is not NEED_DATA:
            if conn.state is State.IDLE:
                conn.send(Command(("ANSWER",)))
    except RemoteProtocolError:
        pass


def test_usage_text_is_bounded_in_bytes():
    conn = _awaiting()
    line = b"520-" + b"u" * 16000 + b"\n"
    conn.receive_data(line * 3)
    assert conn.next_event() is NEED_DATA  # 48 KB so far: still a usage message
    conn.receive_data(line * 2)
    with pytest.raises(RemoteProtocolError, match="longer than 65536 bytes"):
        conn.next_event()
