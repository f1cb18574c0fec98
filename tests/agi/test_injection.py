"""Property tests: caller-controlled text never becomes a command, a line break or a path."""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcall.agi.commands import MAX_ARGS, Command, CommandError, Quoted, encode
from mailcall.agi.environment import split_script
from mailcall.agi.protocol import NEED_DATA, Connection, EnvironmentReceived
from mailcall.agi.safety import caller_text, safe_component
from mailcall.core.text import display_text

from .fake_asterisk import Call, run_call
from .harness import make_runtime, serving
from .support import all_traces

KNOWN = {"EXEC", "GET", "SET", "ANSWER", "STREAM", "RECORD", "VERBOSE", "HANGUP"}


def asterisk_parse(line: str) -> list[str]:
    """res_agi.c parse_args, ported: blanks split, '"' toggles quoting, '\\' escapes.

    A new bare word past MAX_ARGS - 1 stops the parse ("Too many arguments,
    truncating"); a word opening with a quote is not checked (see commands.MAX_WORDS).
    """
    args: list[str] = []
    cur: list[str] = []
    quoted = escaped = whitespace = False
    started = False
    for ch in line:
        if ch in " \t" and not quoted and not escaped:
            if started:
                args.append("".join(cur))
                cur, started = [], False
            whitespace = True
            continue
        if not started and not quoted and ch != '"' and len(args) >= MAX_ARGS - 1:
            break  # Asterisk truncates here
        whitespace = False
        if ch == "\\" and not escaped:
            escaped = True
            started = True
            continue
        if ch == '"' and not escaped:
            quoted = not quoted
            started = True
            continue
        cur.append(ch)
        escaped = False
        started = True
    if started:
        args.append("".join(cur))
    del whitespace
    return args


text = st.text(alphabet=st.characters(codec="utf-8"), max_size=200)


@given(text)
def test_quoted_values_round_trip_or_are_refused(value):
    try:
        data = encode(Command(("SET", "VARIABLE", "X", Quoted(value))), line_limit=8192)
    except CommandError:
        assert any(c in value for c in "\r\n\x00") or len(value.encode()) > 4000
        return
    assert data.count(b"\n") == 1 and data.endswith(b"\n")
    assert b"\r" not in data and b"\x00" not in data
    assert asterisk_parse(data.decode()[:-1]) == ["SET", "VARIABLE", "X", value]


@given(st.lists(text, max_size=140))
def test_any_words_encode_to_at_most_one_line(words):
    try:
        data = encode(Command(("VERBOSE", *(Quoted(w) for w in words))))
    except CommandError:
        return
    assert data.count(b"\n") == 1 and len(data) < 2048
    assert len(words) + 1 <= 127  # room for Asterisk's end marker (commands.MAX_WORDS)


line_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"),
                    max_size=120)


@given(line_text)
def test_query_and_script_never_escape_their_fields(network_script):
    name, query = split_script(network_script)
    assert "?" not in name
    assert len(query) <= 32
    assert "/" not in safe_component(name) and safe_component(name) not in ("", ".", "..")


_REAL = all_traces()[0].env_bytes.decode()  # basic: every variable, two arguments


@given(st.dictionaries(st.sampled_from(["agi_callerid", "agi_calleridname", "agi_dnid",
                                        "agi_network_script", "agi_arg_1", "agi_uniqueid"]),
                       line_text))
def test_environment_parses_whatever_the_values(values):
    conn = Connection()
    lines = [f"{k}: {values[k]}" if (k := line.partition(":")[0]) in values else line
             for line in _REAL.split("\n")[:-2]]
    conn.receive_data(("\n".join(lines) + "\n\n").encode())
    event = conn.next_event()
    assert isinstance(event, EnvironmentReceived)
    for key, value in values.items():
        assert event.environment.raw[key] == value
    assert conn.next_event() is NEED_DATA


caller = st.text(alphabet=st.characters(codec="utf-8"), max_size=60)
"""Line breaks included: Asterisk writes them raw into the environment block (protocol.py)."""
_LINE_BREAKING = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""What no caller-controlled text may keep once in a message: controls (C0, C1 with
NEL), Unicode line and paragraph separators, bidirectional overrides."""


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(number=caller, name=caller, dnid=caller, arg=caller, arg2=caller, query=caller,
       uniqueid=caller, extension=caller, remote=caller,
       script=st.sampled_from(["route", "voicemail", "greeting", "fax"]))
def test_caller_data_never_injects_commands_or_paths(caplog, number, name, dnid, arg, arg2, query,
                                                     uniqueid, extension, remote, script):
    """Everything a caller (or the remote fax machine) controls, at once: caller ID number
    and name, DNID, the dialled extension, AGI arguments 1 and 2, the query string, the
    unique ID, and the fax's REMOTESTATIONID and FAXERROR."""
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    caplog.clear()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rt = make_runtime(root)
        faxed = {name: [f"200 result=1 ({remote})\n"] for name in ("REMOTESTATIONID", "FAXERROR")}
        call = Call(script=f"{script}?to={query}&mailbox={query}&file={query}",
                    args=(arg, arg2), extension=extension.strip() or "s",
                    callerid=number.strip() or "x", calleridname=name.strip() or "x",
                    dnid=dnid.strip() or "x", uniqueid=uniqueid.strip() or "1.1",
                    dials=["busy"] * 8, get_data=[arg, arg, arg, arg, arg, arg],
                    variables=faxed)

        async def go():
            async with serving(rt) as server:
                return await run_call(call, *server.address)

        done = asyncio.run(go())
        spool = (root / "spool" / "rec").resolve()
        greetings = (root / "greetings").resolve()
        for line in done.commands:
            assert line.endswith("\n") and line.count("\n") == 1 and "\r" not in line
            words = asterisk_parse(line[:-1])
            assert words[0] in KNOWN, line
            if words[:2] == ["RECORD", "FILE"]:
                target = Path(words[2]).resolve()
                assert target.is_relative_to(spool) or target.is_relative_to(greetings), line
            if words[:2] == ["STREAM", "FILE"] and words[2].startswith("/"):
                assert Path(words[2]).resolve().is_relative_to(greetings), line
            if words[:2] == ["EXEC", "Dial"]:
                targets = words[2].rsplit(",", 1)[0].split("&")
                assert all(t.startswith("PJSIP/") for t in targets), line
                assert "," not in words[2].rsplit(",", 1)[0]
        assert 'outcome="ERROR"' not in caplog.text, caplog.text
        # One record, on one line: caller data cannot add a line (it may contain the words).
        sessions = [r.getMessage() for r in caplog.records
                    if r.getMessage().startswith("agi session ")]
        assert len(sessions) == 1 and "\n" not in sessions[0], sessions
        for message in rt.depositor.messages:
            texts = [message.caller_number, message.caller_name,
                     getattr(message, "station_id", ""), getattr(message, "error", "")]
            for field in texts:
                assert not _LINE_BREAKING.search(field), (field, message)
            path = getattr(message, "recording", None) or getattr(message, "tiff", None)
            if path:
                assert Path(path).resolve().is_relative_to(spool)


@given(st.text(max_size=100))
def test_caller_text_keeps_no_line_breaking_or_bidi_characters(value):
    cleaned = caller_text(value)
    assert not _LINE_BREAKING.search(cleaned) and len(cleaned) <= 80


def test_caller_text_drops_unicode_line_separators():
    # display_text's rule: each hidden character is a space, runs of spaces one.
    assert caller_text("Jean\u2028Bcc: x\u0085y\u202eevil") == "Jean Bcc: x y evil"
    assert caller_text("\r\nBcc: x@evil") == "Bcc: x@evil"


@given(st.text(alphabet=st.characters(exclude_categories=()), max_size=200),
       st.integers(min_value=1, max_value=120))
def test_caller_text_is_display_text_and_never_raises(value, limit):
    """The one rule (core.text.display_text), bounded, also for lone surrogates."""
    cleaned = caller_text(value, limit)
    assert len(cleaned) <= limit and "\n" not in cleaned and "\r" not in cleaned
    assert not _LINE_BREAKING.search(cleaned)
    if not re.search("[\ud800-\udfff]", value):
        assert cleaned == display_text(value, limit)
