"""The script-socket protocol, fed one byte at a time, against bytes Dovecot really sends."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcall.core.sansio import LocalProtocolError, RemoteProtocolError
from mailcall.sieve.script_protocol import (
    NEED_DATA,
    Arguments,
    EndOfInput,
    Environment,
    Input,
    Limits,
    ScriptServerConnection,
    Version,
    parse_reply,
    serialize_reply,
    serialize_request,
    tab_escape,
    tab_unescape,
)

# As program-client-remote.c writes it for `execute :input "..." "mailcall" ["notify"]`.
DOVECOT_REQUEST = (
    b"VERSION\tscript\t4\t0\n"
    b"env_USER=alice@stockinox.example\n"
    b"env_HOME=/home/alice\n"
    b"env_HOST=mx1\n"
    b"env_SENDER=bob@example.net\n"
    b"env_RECIPIENT=alice@stockinox.example\n"
    b"env_ORIG_RECIPIENT=alice@stockinox.example\n"
    b"-\n"
    b"notify\n"
    b"tab\x01there\x01nnewline\x011one\x010nul\n"
    b"\n"
    b"subject=Hello%20there\nmessage-id=%3Cx%40y%3E\n"
)


def feed_bytewise(conn: ScriptServerConnection, data: bytes, eof: bool = True) -> list:
    events = []
    chunks = [data[i:i + 1] for i in range(len(data))] + ([b""] if eof else [])
    for chunk in chunks:
        conn.receive_data(chunk)
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                break
            events.append(event)
    return events


def merged_input(events: list) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Input))


def test_dovecot_request_byte_by_byte():
    conn = ScriptServerConnection()
    events = feed_bytewise(conn, DOVECOT_REQUEST)
    assert events[0] == Version("script", 4, 0)
    env = events[1]
    assert isinstance(env, Environment)
    assert env.reply_wanted is True
    assert env.get("RECIPIENT") == "alice@stockinox.example"
    assert env.get("SENDER") == "bob@example.net"
    assert env.get("MISSING", "x") == "x"
    assert events[2] == Arguments(("notify", "tab\there\nnewline\x01one\x00nul"))
    assert merged_input(events) == b"subject=Hello%20there\nmessage-id=%3Cx%40y%3E\n"
    assert events[-1] == EndOfInput()
    assert conn.finished


def test_noreply_and_empty_input():
    events = feed_bytewise(ScriptServerConnection(), b"VERSION\tscript\t4\t0\nnoreply\n\n")
    assert events == [Version("script", 4, 0), Environment((), False), Arguments(()),
                      EndOfInput()]


def test_no_event_before_input_is_complete():
    conn = ScriptServerConnection()
    events = feed_bytewise(conn, DOVECOT_REQUEST, eof=False)
    assert not any(isinstance(e, EndOfInput) for e in events)
    assert not conn.finished


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (b"HELLO\n", "VERSION"),
        (b"VERSION\tscript\t5\t0\n", "unsupported"),
        (b"VERSION\tscript\t4\t0\nbogus\n", "env_"),
        (b"VERSION\tscript\t4\t0\nenv_=x\n", "malformed"),
        (b"VERSION\tscript\t4\t0\n-\nbad\x01xescape\n\n", "escape"),
        (b"VERSION\tscript\t4\t0\nenv_A=", "closed"),
    ],
)
def test_malformed_requests_raise(data: bytes, words: str):
    with pytest.raises(RemoteProtocolError, match=words):
        feed_bytewise(ScriptServerConnection(), data)


def test_bounded_sizes():
    limits = Limits(max_line=64, max_env=2, max_args=2, max_input=10)
    with pytest.raises(RemoteProtocolError, match="longer"):
        feed_bytewise(ScriptServerConnection(limits), b"VERSION\tscript\t4\t0\n-\n" + b"a" * 100)
    with pytest.raises(RemoteProtocolError, match="environment"):
        feed_bytewise(ScriptServerConnection(limits),
                      b"VERSION\tscript\t4\t0\nenv_A=1\nenv_B=2\nenv_C=3\n-\n\n")
    with pytest.raises(RemoteProtocolError, match="arguments"):
        feed_bytewise(ScriptServerConnection(limits), b"VERSION\tscript\t4\t0\n-\na\nb\nc\n\n")
    with pytest.raises(RemoteProtocolError, match="input larger"):
        feed_bytewise(ScriptServerConnection(limits), b"VERSION\tscript\t4\t0\n-\n\n" + b"x" * 11)


def test_failed_connection_stays_failed():
    conn = ScriptServerConnection()
    conn.receive_data(b"NOPE\n")
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        conn.next_event()
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"more")


def test_empty_argument_cannot_be_sent():
    """A blank line ends the arguments, so the protocol cannot carry an empty one: our own
    misuse, refused as core/sansio's LocalProtocolError (it was a bare ValueError)."""
    with pytest.raises(LocalProtocolError, match="empty") as caught:
        serialize_request(["notify", ""])
    assert not isinstance(caught.value, ValueError)


def test_data_after_eof_is_an_error():
    conn = ScriptServerConnection()
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"x")


def test_reply_serialisation():
    assert serialize_reply(True) == b"+\n"
    assert serialize_reply(False) == b"-\n"
    assert serialize_reply(True, b"Voicemail") == b"Voicemail+\n"
    assert parse_reply(b"Voicemail+\n") == (True, b"Voicemail")
    assert parse_reply(b"-\n") == (False, b"")
    with pytest.raises(RemoteProtocolError):
        parse_reply(b"nothing")


@given(st.binary(max_size=200))
def test_escape_round_trip(raw: bytes):
    escaped = tab_escape(raw)
    assert b"\n" not in escaped and b"\t" not in escaped and b"\r" not in escaped
    assert tab_unescape(escaped) == raw


@given(
    st.lists(st.text(min_size=1, max_size=40), max_size=5),
    st.dictionaries(st.sampled_from(["USER", "SENDER", "RECIPIENT", "HOME"]),
                    st.text(max_size=40)),
    st.binary(max_size=300),
)
def test_request_round_trip_bytewise(args, env, data):
    """Whatever the arguments hold (tabs, newlines, NUL), they come back intact."""
    events = feed_bytewise(ScriptServerConnection(), serialize_request(args, env, data))
    assert isinstance(events[1], Environment)
    assert dict(events[1].variables) == env
    assert events[2] == Arguments(tuple(args))
    assert merged_input(events) == data
    assert events[-1] == EndOfInput()


def _events_then_error(data: bytes, step: int) -> tuple[list, str | None]:
    """Events (the input merged) and the error, if any, for `data` fed `step` bytes at a time."""
    conn = ScriptServerConnection()
    events: list = []
    try:
        for i in range(0, len(data), step):
            conn.receive_data(data[i:i + step])
            while (event := conn.next_event()) is not NEED_DATA:
                events.append(event)
        conn.receive_data(b"")
        while (event := conn.next_event()) is not NEED_DATA:
            events.append(event)
    except RemoteProtocolError as exc:
        return [e for e in events if not isinstance(e, Input)], str(exc)
    return [e for e in events if not isinstance(e, Input)] + [merged_input(events)], None


@pytest.mark.parametrize("data", [
    DOVECOT_REQUEST,
    b"VERSION\tscript\t4\t0\nenv_A=1\n-\n\n",  # no argument, no input
    b"VERSION\tscript\t4\t0\nenv_A=1\nbogus\n-\n\n",
    b"VERSION\tscript\t4\t0\n-\na\n" + b"x" * 9000 + b"\n\n",
    b"VERSION\tscript\t4\t0\nenv_A=",
])
def test_how_the_bytes_arrive_never_changes_the_events(data):
    """One reading of the header whatever the reads: whole, in pieces or byte by byte,
    the same events come before the same error."""
    whole = _events_then_error(data, len(data))
    assert _events_then_error(data, 5) == whole
    assert _events_then_error(data, 1) == whole
