"""The sans-I/O AMI machine on bytes a real Asterisk sent (tests/ami/traces), then hostile input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcall.ami.actions import encode_action
from mailcall.ami.messages import Banner, ConnectionClosed, Event, Response
from mailcall.ami.protocol import MAX_LIST_EVENTS, NEED_DATA, Connection, State
from mailcall.core.sansio import LocalProtocolError, RemoteProtocolError

TRACES = Path(__file__).parent / "traces"


def load(name: str) -> list[dict]:
    lines = (TRACES / f"{name}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines[1:]]


def action_of(data: str) -> tuple[str, dict[str, str]]:
    fields = dict(line.split(": ", 1) for line in data.split("\r\n") if line)
    return fields.pop("Action"), fields


def replay(name: str, chunk: int | None = None) -> list:
    """Feed Asterisk's bytes (re-cut into `chunk`-byte pieces if given); send the client's
    actions through the machine, which numbers them itself, and map its ids onto the trace's."""
    conn = Connection(action_prefix="t")
    events: list = []
    ids: dict[str, str] = {}

    def drain() -> None:
        while (ev := conn.next_event()) is not NEED_DATA:
            events.append(ev)

    for row in load(name):
        data = row["data"].encode("latin-1")
        if row["dir"] == "client":
            action, fields = action_of(row["data"])
            trace_id = fields.pop("ActionID")
            our_id, wire = conn.send_action(action, fields)
            assert wire.replace(our_id.encode(), trace_id.encode()) == data  # same bytes
            ids[our_id] = trace_id
            continue
        # The trace's ActionIDs become ours, as if Asterisk echoed what we sent.
        for ours, theirs in ids.items():
            data = data.replace(f"ActionID: {theirs}\r\n".encode(),
                                f"ActionID: {ours}\r\n".encode())
        step = chunk or len(data)
        pieces = [data[i:i + step] for i in range(0, len(data), step)]
        for piece in pieces:
            conn.receive_data(piece)
            drain()
    conn.receive_data(b"")
    drain()
    return events


@pytest.mark.parametrize("chunk", [None, 1, 7])
def test_real_session_replayed(chunk):
    events = replay("session", chunk)
    assert events[0] == Banner("13.0.0")
    responses = [e for e in events if isinstance(e, Response)]
    by_action = {r.action + ":" + r.action_id: r for r in responses}
    assert [r.action for r in responses] == [
        "Login", "Ping", "MWIUpdate", "MWIUpdate", "MWIGet", "MWIGet", "MWIGet", "MWIUpdate",
        "NoSuchAction", "MWIDelete", "Logoff"]
    login = responses[0]
    assert login.ok and login.text == "Authentication accepted"
    booted = [e for e in events if isinstance(e, Event)]
    assert [e.name for e in booted] == ["FullyBooted"]
    assert booted[0].message.get("status") == "Fully Booted"  # keys compared without case
    one = responses[4]
    assert one.ok and [m.get("Event") for m in one.events] == ["MWIGet", "MWIGetComplete"]
    assert one.events[0].get("Mailbox") == "alice@mailcall"
    assert (one.events[0].get("NewMessages"), one.events[0].get("OldMessages")) == ("1", "0")
    regex = responses[5]
    assert [m.get("Mailbox") for m in regex.events[:-1]] == ["alice@mailcall", "bob@mailcall"]
    assert regex.events[-1].get("ListItems") == "2"
    assert responses[6].events[-1].get("ListItems") == "0"  # unknown mailbox: empty list
    bad = responses[7]
    assert not bad.ok and bad.text == "Invalid NewMessages: x"
    assert not responses[8].ok and "Invalid/unknown command" in responses[8].text
    assert responses[10].status == "Goodbye" and responses[10].ok
    assert events[-1] == ConnectionClosed(())
    assert len(by_action) == len(responses)  # one answer per action


def test_real_refused_login():
    events = replay("login-refused")
    refused = [e for e in events if isinstance(e, Response)]
    assert len(refused) == 1 and not refused[0].ok
    assert refused[0].text == "Authentication failed"


def test_real_events_and_shutdown():
    events = replay("events-shutdown", 3)
    names = [e.name for e in events if isinstance(e, Event)]
    assert names == ["FullyBooted", "MessageWaiting", "Shutdown"]
    waiting = next(e for e in events if isinstance(e, Event) and e.name == "MessageWaiting")
    assert waiting.message.get("Mailbox") == "carol@mailcall"
    assert (waiting.message.get("New"), waiting.message.get("Old")) == ("2", "1")
    assert isinstance(events[-1], ConnectionClosed)


def opened() -> Connection:
    conn = Connection()
    conn.receive_data(b"Asterisk Call Manager/13.0.0\r\n")
    assert conn.next_event() == Banner("13.0.0")
    return conn


def test_not_a_banner_is_refused_early():
    conn = Connection()
    conn.receive_data(b"HTTP/1.1 400 Bad Request")  # no line end yet: refused anyway
    with pytest.raises(RemoteProtocolError, match="not an Asterisk AMI banner"):
        conn.next_event()
    assert conn.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        conn.next_event()


def test_closed_before_banner():
    conn = Connection()
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="before the Asterisk Call Manager banner"):
        conn.next_event()


def test_huge_line_without_end_is_refused_before_it_grows():
    conn = opened()
    conn.receive_data(b"Event: X\r\nJunk: ")
    for _ in range(200):
        conn.receive_data(b"A" * 1024)
        try:
            assert conn.next_event() is NEED_DATA
        except RemoteProtocolError as exc:
            assert "a line longer than" in str(exc)
            break
    else:
        pytest.fail("a 200 KiB line was accepted")
    assert conn.buffered <= 70 * 1024


def test_huge_message_of_short_lines_is_refused():
    conn = Connection(max_message_bytes=10_000)
    conn.receive_data(b"Asterisk Call Manager/13.0.0\r\n")
    conn.next_event()
    conn.receive_data(b"Event: X\r\n" + b"K: v\r\n" * 3000)
    with pytest.raises(RemoteProtocolError, match="a message longer than"):
        conn.next_event()


def test_garbage_line_is_refused():
    conn = opened()
    conn.receive_data(b"Event: X\r\nthis is not a field\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="not an AMI 'Key: Value' line"):
        conn.next_event()


def test_message_without_response_or_event():
    conn = opened()
    conn.receive_data(b"Foo: bar\r\n\r\n")
    with pytest.raises(RemoteProtocolError, match="neither Response nor Event"):
        conn.next_event()


def test_answer_to_no_action_is_dropped_and_counted():
    conn = opened()
    conn.receive_data(b"Response: Success\r\nActionID: invented\r\n\r\nEvent: Y\r\n\r\n")
    ev = conn.next_event()
    assert isinstance(ev, Event) and ev.name == "Y"
    assert conn.unmatched == 1


def test_abandoned_action_answer_is_dropped():
    conn = opened()
    aid, _ = conn.send_action("MWIGet", {"Mailbox": "/x/"})
    conn.abandon(aid)
    conn.receive_data(f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n"
                      f"Event: MWIGet\r\nActionID: {aid}\r\n\r\n"
                      f"Event: MWIGetComplete\r\nActionID: {aid}\r\nEventList: Complete\r\n\r\n"
                      .encode())
    assert conn.next_event() is NEED_DATA
    assert conn.pending == () and conn.buffered == 0


def test_list_is_bounded():
    conn = Connection(max_list_events=3)
    conn.receive_data(b"Asterisk Call Manager/13.0.0\r\n")
    conn.next_event()
    aid, _ = conn.send_action("MWIGet", {"Mailbox": "/x/"})
    conn.receive_data(f"Response: Success\r\nActionID: {aid}\r\nEventList: start\r\n\r\n".encode()
                      + f"Event: MWIGet\r\nActionID: {aid}\r\n\r\n".encode() * 5)
    with pytest.raises(RemoteProtocolError, match="longer than 3 events"):
        conn.next_event()
    assert MAX_LIST_EVENTS >= 100_000  # MWIGet of every mailbox of a large site fits


def test_end_of_file_reports_pending_actions():
    conn = opened()
    aid, _ = conn.send_action("Ping")
    conn.receive_data(b"")
    assert conn.next_event() == ConnectionClosed((aid,))


def test_eof_in_the_middle_of_a_message():
    conn = opened()
    conn.receive_data(b"Event: X\r\nA: b\r\n")
    conn.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="middle of a message"):
        conn.next_event()


def test_bare_lf_line_ends_are_accepted():
    conn = opened()
    conn.receive_data(b"Event: X\nA: b\n\nEvent: Y\r\n\r\n")
    assert conn.next_event().message.get("A") == "b"
    assert conn.next_event().name == "Y"


def test_empty_value_and_colon_in_value():
    conn = opened()
    conn.receive_data(b"Event: X\r\nEmpty:\r\nURL: sip:a@b:5060\r\nSpace: \r\n\r\n")
    msg = conn.next_event().message
    assert msg.get("Empty") == "" and msg.get("Space") == "" and msg.get("URL") == "sip:a@b:5060"


@pytest.mark.parametrize("value", ["a\r\nAction: Originate", "x\ny", "nul\0"])
def test_values_cannot_inject_a_header(value):
    conn = opened()
    with pytest.raises(LocalProtocolError, match="CR, LF or NUL"):
        conn.send_action("MWIUpdate", {"Mailbox": value})
    assert conn.pending == ()


def test_protocol_fields_cannot_be_overridden():
    with pytest.raises(LocalProtocolError, match="set by the protocol"):
        encode_action("Ping", {"ActionID": "x"}, "a-1")
    with pytest.raises(LocalProtocolError, match="field name"):
        encode_action("Ping", {"Bad Name": "x"}, "a-1")


def test_line_longer_than_asterisk_reads_is_refused():
    with pytest.raises(LocalProtocolError, match="1024 bytes per line"):
        encode_action("MWIUpdate", {"Mailbox": "m" * 1020}, "a-1")
    assert len(encode_action("MWIUpdate", {"Mailbox": "m" * 1011}, "a-1").split(b"\r\n")[2]) == 1020


def test_too_many_actions_in_flight():
    conn = Connection(max_pending=2)
    conn.receive_data(b"Asterisk Call Manager/13.0.0\r\n")
    conn.next_event()
    conn.send_action("Ping")
    conn.send_action("Ping")
    with pytest.raises(LocalProtocolError, match="already wait"):
        conn.send_action("Ping")


def test_no_action_before_the_banner():
    with pytest.raises(LocalProtocolError, match="state banner"):
        Connection().send_action("Ping")


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=300), max_size=30))
def test_any_bytes_give_events_or_a_protocol_error(chunks):
    conn = Connection(max_line=256, max_message_bytes=2048)
    conn.receive_data(b"Asterisk Call Manager/13.0.0\r\n")
    conn.next_event()
    try:
        for chunk in chunks:
            conn.receive_data(chunk)
            while conn.next_event() is not NEED_DATA:
                pass
            assert conn.buffered <= 2048 + 300
    except RemoteProtocolError:
        assert conn.state is State.ERROR


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_real_trace_cut_anywhere_gives_the_same_events(data):
    whole = replay("session")
    cut = data.draw(st.integers(1, 64))
    assert replay("session", cut) == whole


@pytest.mark.parametrize("prefix", ["mail call", "x\r\nAction: Originate", ""])
def test_an_action_prefix_that_would_inject_is_our_own_misuse(prefix):
    """ActionID is written from the prefix: a bad one is refused as core/sansio's
    LocalProtocolError, like every misuse of a machine (it was a bare ValueError)."""
    with pytest.raises(LocalProtocolError, match="action_prefix") as caught:
        Connection(action_prefix=prefix)
    assert not isinstance(caught.value, ValueError)
