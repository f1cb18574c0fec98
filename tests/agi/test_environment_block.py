"""Caller-controlled line breaks inside the environment block (issue 10, section 2).

PJSIP decodes ``%0d%0a`` in a SIP From user, and res_agi.c ``setup_env`` writes
``agi_callerid: %s\\n`` with the raw value: a caller number ``\\r\\nBcc: x@evil``
reaches mailcall as the line ``agi_callerid: \\r`` and then a line
``Bcc: x@evil``, inside the block. mailcall used to answer PROTOCOL_ERROR and
route nothing. Every input here is the real block of ``basic.jsonl`` with the
hostile bytes put exactly where Asterisk would write them.
"""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailcall.agi.environment_layout import SETUP_ENV_ORDER
from mailcall.agi.protocol import (
    NEED_DATA,
    Connection,
    EnvironmentReceived,
    RemoteProtocolError,
)
from mailcall.agi.safety import caller_name, caller_text

from .fake_asterisk import Call
from .harness import make_runtime, run, serving
from .support import TRACES, all_traces, load_trace
from .test_handlers import dials, drive

BASIC = load_trace(TRACES / "basic.jsonl")
REAL_TEXT = BASIC.env_bytes.decode()
REAL = dict(line.split(": ", 1) for line in REAL_TEXT.split("\n")[:-2])
"""The variables of the recorded block, as Asterisk wrote them."""

CALLER_KEYS = ("agi_network_script", "agi_request", "agi_callerid", "agi_calleridname",
               "agi_dnid", "agi_rdnis", "agi_extension", "agi_accountcode")
"""Values a caller (through SIP) or the dialplan (URL, account code) chooses."""


def block(**values: str) -> bytes:
    """The basic block with `values` (raw) written as setup_env writes them: ``key: value\\n``."""
    lines = []
    for line in REAL_TEXT.split("\n")[:-2]:
        key = line.partition(":")[0]
        lines.append(f"{key}: {values[key]}" if key in values else line)
    return ("\n".join(lines) + "\n\n").encode()


def parse(data: bytes, *, bytewise: bool) -> tuple[Connection, dict[str, str]]:
    conn = Connection()
    events = []
    pieces = [data[i:i + 1] for i in range(len(data))] if bytewise else [data]
    for piece in pieces:
        conn.receive_data(piece)
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
    (event,) = events
    assert isinstance(event, EnvironmentReceived)
    return conn, dict(event.environment.raw)


def test_the_real_block_is_in_setup_envs_order():
    """The order the reader relies on is the one a real Asterisk wrote."""
    assert tuple(k for k in REAL if not k.startswith("agi_arg_")) == SETUP_ENV_ORDER
    assert [k for k in REAL if k.startswith("agi_arg_")] == ["agi_arg_1", "agi_arg_2"]


@pytest.mark.parametrize("bytewise", [False, True])
def test_crlf_in_the_caller_number_is_read_as_its_value(bytewise):
    data = block(agi_callerid="\r\nBcc: x@evil")
    assert b"agi_callerid: \r\nBcc: x@evil\nagi_calleridname: Alice Martin\n" in data
    conn, env = parse(data, bytewise=bytewise)
    assert env == {**REAL, "agi_callerid": "\r\nBcc: x@evil"}
    assert "Bcc" not in env and all("Bcc" not in v for k, v in env.items() if k != "agi_callerid")
    assert caller_text(conn.environment.callerid) == "Bcc: x@evil"  # one line, no CR
    assert conn.next_event() is NEED_DATA


HOSTILE = ["\r\nBcc: x@evil", "x\n\nBcc: y", "\r\n\r\n", "a\n\n\nb", "Jean\n", "\n",
           "x\rBcc: y", "+33 1\n${SHELL}\n$(id)"]


@pytest.mark.parametrize("key", CALLER_KEYS)
@pytest.mark.parametrize("value", HOSTILE)
def test_line_breaks_in_any_caller_value_keep_every_other_value(key, value):
    """LF LF included: a blank line before agi_threadid is a line break inside a value."""
    for bytewise in (False, True):
        _conn, env = parse(block(**{key: value}), bytewise=bytewise)
        assert env == {**REAL, key: value}


def test_line_breaks_in_an_argument_without_a_blank_line():
    _conn, env = parse(block(agi_arg_1="first\r\nBcc: x", agi_arg_2="a\nb"), bytewise=True)
    assert env == {**REAL, "agi_arg_1": "first\r\nBcc: x", "agi_arg_2": "a\nb"}


OWN_CHECKED = ("agi_context", "agi_extension", "agi_priority", "agi_uniqueid", "agi_channel")


@pytest.mark.parametrize("key, value, unknown", [
    ("agi_callerid", "1\nagi_context: from-internal", ()),
    ("agi_callerid", "1\r\nagi_context: x", ()),
    ("agi_callerid", "1\nagi_arg_1: alice", ()),
    ("agi_callerid", "1\nagi_uniqueid: ../../x\nagi_channel: PJSIP/boss", ()),
    ("agi_callerid", "1\nagi_uniqueid: 9\nagi_version: 1\nagi_callerid: 2", ()),
    ("agi_calleridname", "x\nagi_threadid: 1\nagi_arg_1: 9\n", ()),
    ("agi_calleridname", "x\r\nagi_uniqueid: 1795887700.4", ()),
    ("agi_calleridname", "x\nagi_callingpres: 0\nagi_callingani2: 0", ()),
    ("agi_dnid", "201\nagi_extension: 201", ()),
    ("agi_rdnis", "1\nagi_context: from-internal\nagi_extension: 9", ()),
    ("agi_extension", "s\nagi_priority: 1", ()),
    ("agi_callerid", "1\nagi_calleridname: forged", ("agi_callerid", "agi_calleridname")),
    ("agi_dnid", "1\nagi_rdnis: forged", ("agi_dnid", "agi_rdnis")),
])
def test_a_copy_of_asterisks_own_lines_is_caller_text(key, value, unknown, caplog):
    """Issue 10 §2: ``1%0aagi_context:%20x`` in a From user got the whole call refused.
    A copy of one of Asterisk's lines is the caller's text: the call is read, Asterisk's
    own values are the real ones; where the cut between two caller values is a guess,
    both are unknown and one WARNING names the channel."""
    for bytewise in (False, True):
        caplog.clear()
        conn, env = parse(block(**{key: value}), bytewise=bytewise)
        own = [k for k in OWN_CHECKED if k != key]
        assert {k: env[k] for k in own} == {k: REAL[k] for k in own}
        assert env == {**REAL, key: value, **dict.fromkeys(unknown, "unknown")}
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == (1 if unknown else len(warnings)) <= 1
        assert all(REAL["agi_channel"] in r.getMessage() for r in warnings)
        if unknown:
            assert getattr(conn.environment, unknown[0].removeprefix("agi_")) == ""


def test_a_copy_of_an_argument_line_stays_in_the_arguments(caplog):
    _conn, env = parse(block(agi_arg_1="201\nagi_arg_2: busy"), bytewise=True)
    assert {k: env[k] for k in REAL if not k.startswith("agi_arg_")} == {
        k: v for k, v in REAL.items() if not k.startswith("agi_arg_")}
    assert env["agi_arg_1"] == "201" and env["agi_arg_2"] == "busy\nagi_arg_2: " + REAL[
        "agi_arg_2"]
    assert "agi_arg_" in caplog.text  # the WARNING says the dialplan's text was cut


def test_a_name_asterisk_does_not_write_is_a_variable_of_its_own():
    """A newer Asterisk may add variables: one in a value cuts only the caller's own text."""
    _conn, env = parse(block(agi_callerid="1\nagi_newthing: x"), bytewise=False)
    assert env == {**REAL, "agi_callerid": "1", "agi_newthing": "x"}


def forged_tail() -> tuple[str, bytes]:
    """A caller number holding a whole forged rest of the block and a blank line."""
    rest = REAL_TEXT.split("agi_calleridname:", 1)[1]
    forged = ("1\nagi_calleridname:" + rest.replace("agi_arg_1: first arg", "agi_arg_1: 201")
              .replace("agi_context: tests", "agi_context: from-internal"))[:-1]
    data = block(agi_callerid=forged)
    assert data.count(b"\n\n") == 2
    return forged, data


def test_a_forged_early_end_is_refused_when_the_real_rest_arrives():
    _forged, data = forged_tail()
    conn = Connection()
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, EnvironmentReceived)  # indistinguishable so far ...
    assert event.environment.raw["agi_context"] == "from-internal"
    with pytest.raises(RemoteProtocolError, match="after the environment block ended"):
        conn.next_event()  # ... until Asterisk's real lines follow, before any reply


def test_a_forged_early_end_in_one_read_never_starts_the_handler(tmp_path, caplog):
    """Asterisk writes the whole block before it reads a command: the real rest is in
    the same read, and the call is refused before the handler sends anything."""
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    rt = make_runtime(tmp_path)
    _forged, data = forged_tail()
    data = data.replace(b"agi_network_script: basic?lang=fr&user=201",
                        b"agi_network_script: route")

    async def go():
        async with serving(rt) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(data)
            got = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return got

    assert run(go()) == b""
    assert 'outcome="PROTOCOL_ERROR"' in caplog.text
    assert "after the environment block ended" in caplog.text
    assert rt.depositor.messages == []


def test_a_forged_early_end_split_across_reads_gets_no_further_than_the_language(tmp_path,
                                                                                   caplog):
    """When the real rest comes in a later read, the handler has sent its first command:
    SET VARIABLE CHANNEL(language), which acts on nothing. Then the call is refused."""
    caplog.set_level(logging.INFO, logger="mailcall.agi")
    rt = make_runtime(tmp_path)
    _forged, data = forged_tail()
    data = data.replace(b"agi_network_script: basic?lang=fr&user=201",
                        b"agi_network_script: route")
    cut = data.index(b"\n\n") + 2

    async def go():
        async with serving(rt) as server:
            reader, writer = await asyncio.open_connection(*server.address)
            writer.write(data[:cut])
            first = await asyncio.wait_for(reader.readline(), 5)
            writer.write(data[cut:] + b"200 result=1\n")
            rest = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return first, rest

    first, rest = run(go())
    assert first.startswith(b"SET VARIABLE CHANNEL(language) ")
    assert b"Dial" not in rest and b"ANSWER" not in rest and b"RECORD" not in rest
    assert "after the environment block ended" in caplog.text
    assert rt.depositor.messages == []


# -------------------------------------------------------------- any caller string

EVERY_NAME = [*SETUP_ENV_ORDER, "agi_arg_1", "agi_arg_2", "agi_arg_3", "agi_zz"]
piece = st.one_of(
    st.text(alphabet=st.sampled_from("ab \r\n\t:\x00é€"), max_size=8),
    st.builds(lambda name, cr, value: f"{cr}\n{name}: {value}", st.sampled_from(EVERY_NAME),
              st.sampled_from(["", "\r"]), st.sampled_from(["x", "1", "", "x\r"])),
    st.sampled_from(["\n\n", "\r\n", "agi_callerid: 2"]),
)
PJSIP_CALLER_ID = 79
"""res_pjsip keeps at most 79 bytes of a caller number or name (AST_CHANNEL_NAME)."""
caller_string = st.lists(piece, max_size=6).map("".join).filter(
    lambda text: len(text.encode()) <= PJSIP_CALLER_ID)
_AGI_LINE = re.compile(r"\n(agi_[a-z0-9_]+):")
SIP_KEYS = ("agi_callerid", "agi_calleridname", "agi_dnid", "agi_rdnis")
"""What a SIP caller writes: number, name, request URI user (DNID), Diversion (RDNIS)."""
_OWN_KEYS = [k for k in REAL if k not in CALLER_KEYS]
"""What Asterisk writes itself: the caller must never be able to change it."""


def outcome(data: bytes) -> dict[str, str] | str:
    results = []
    for bytewise in (False, True):
        try:
            results.append(parse(data, bytewise=bytewise)[1])
        except RemoteProtocolError as exc:
            results.append(str(exc))
    assert results[0] == results[1]  # however the bytes are cut into reads
    return results[0]


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(SIP_KEYS), caller_string, max_size=4))
def test_a_sip_callers_copies_of_any_name_never_change_asterisks_values(values):
    """Whatever copies of Asterisk's lines (CR or not) a SIP caller writes in its values,
    the call is read and every other value is the real one; a caller value is the
    caller's text or, when its end is a guess, ``unknown``."""
    result = outcome(block(**values))
    assert isinstance(result, dict), result
    assert {k: result.get(k) for k in REAL if k not in SIP_KEYS} == {
        k: v for k, v in REAL.items() if k not in SIP_KEYS}
    extra = {k for k in result if k not in REAL}
    assert extra <= {"agi_zz"} and (not extra or any("agi_zz" in v for v in values.values()))
    for key in SIP_KEYS:
        assert result[key] in (values.get(key, REAL[key]), "unknown") or (
            "agi_zz" in values.get(key, ""))
    if not any(_AGI_LINE.search(v) for v in values.values()):
        assert result == {**REAL, **values}  # exact, CR and LF included


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(CALLER_KEYS), caller_string, max_size=4))
def test_any_caller_or_dialplan_strings_are_read_exactly_or_refused(values):
    """The dialplan's values too (URL, extension, account code): a block, or a
    RemoteProtocolError, never another exception; exact when no agi_ line is copied."""
    result = outcome(block(**values))
    if not any(_AGI_LINE.search(v) for v in values.values()):
        assert result == {**REAL, **values}
    elif isinstance(result, dict) and not set(values) - set(SIP_KEYS):
        assert {k: result[k] for k in _OWN_KEYS} == {k: REAL[k] for k in _OWN_KEYS}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(piece, st.sampled_from([f"{k}: 1\n" for k in EVERY_NAME])),
                max_size=30).map("".join))
def test_no_input_gives_anything_but_a_block_or_a_protocol_error(text):
    """Bytes that are no Asterisk block at all end in RemoteProtocolError or wait for more."""
    conn = Connection()
    try:
        conn.receive_data(("agi_network: yes\n" + text + "\n\n").encode())
        conn.next_event()
        conn.receive_data(b"")
        conn.next_event()
    except RemoteProtocolError:
        pass


# ---------------------------------------------------------- the call goes through

def test_a_call_from_a_crlf_caller_number_is_routed_and_cleaned(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(args=("201",), callerid="\r\nBcc: x@evil",
                          calleridname='Jean \\"Le Boss\\"\r\nBcc: y@evil',
                          dials=["busy", "busy", "busy"]))
    assert dials(call)[0] == 'EXEC Dial "PJSIP/201,20"\n'
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "alice" and msg.recording is not None
    assert msg.caller_number == "Bcc: x@evil"
    assert msg.caller_name == 'Jean "Le Boss" Bcc: y@evil'
    for text in (msg.caller_number, msg.caller_name):
        assert "\r" not in text and "\n" not in text
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    assert caller_name(call.calleridname) == msg.caller_name


def _outcome(data: bytes, step: int) -> tuple[str, object]:
    """What a connection makes of `data` fed `step` bytes at a time, then end of file."""
    conn = Connection()
    try:
        for i in range(0, len(data), step):
            conn.receive_data(data[i:i + step])
            while (event := conn.next_event()) is not NEED_DATA:
                if isinstance(event, EnvironmentReceived):
                    return "environment", dict(event.environment.raw)
        conn.receive_data(b"")
        return "end", conn.next_event()
    except RemoteProtocolError as exc:
        return "refused", str(exc)


@pytest.mark.parametrize("data", [
    BASIC.env_bytes,
    block(agi_priority="x"),  # not as Asterisk writes it
    REAL_TEXT.replace("agi_channel: ", "agi_channel:").encode(),  # no space after the colon
    block(agi_callerid="1\nagi_context: forged"),
    block(agi_calleridname="A\n\nB"),
    REAL_TEXT.replace("agi_threadid:", "agi_new: 1\nagi_threadid:").encode(),
], ids=["real", "priority-x", "no-space", "forged-context", "blank-in-name", "new-name"])
def test_how_the_bytes_arrive_never_changes_what_is_read(data):
    """One reader whatever the reads: the block whole, cut in pieces or byte by byte gives
    the same variables or the same refusal. (A block in one read used to be checked by a
    regex of its own, less strict than the reader: `agi_priority: x` or `agi_channel:X`
    was a call in one read, a refused one byte by byte.)"""
    whole = _outcome(data, len(data))
    assert _outcome(data, 7) == whole
    assert _outcome(data, 1) == whole


def _searched(lines: list[str]) -> dict[str, str]:
    """The block read line by line by the reader's rules and search, never in one step."""
    from mailcall.agi.environment_reader import EnvironmentBlockReader as _EnvReader

    reader = _EnvReader()
    assert not any(reader._read_line(line) for line in lines)
    assert reader._read_line("") and not reader.notes
    return reader.env


@pytest.mark.parametrize("data", [
    *(trace.env_bytes for trace in all_traces()),
    block(agi_callerid="", agi_calleridname="a: b", agi_accountcode="x\r"),
    block(agi_extension="agi_context: x", agi_dnid=" spaced "),
], ids=[*(trace.name for trace in all_traces()), "odd-values", "name-like-values"])
def test_a_block_in_asterisks_order_is_read_as_the_search_reads_it(data):
    """When every name comes once and in its place, the reader takes the block in one
    step (_in_order); that step must find exactly what the search would."""
    from mailcall.agi.environment_layout import in_order as _in_order

    lines = data.decode().split("\n")[:-2]
    env = _in_order(lines)
    assert env is not None
    assert env == _searched(lines)
