"""The sans-I/O IMAP response reader: responses cut at any byte boundary, literals, bounds."""

from __future__ import annotations

import pytest

from mailcall.core.sansio import RemoteProtocolError
from mailcall.imap.protocol import (
    Continuation,
    ResponseReader,
    Tagged,
    Untagged,
    fetch_items,
    parse,
)

STREAM = (b"* OK [CAPABILITY IMAP4rev1] ready\r\n"
          b"* 2 FETCH (UID 7 FLAGS (\\Seen \\Deleted) BODY[HEADER.FIELDS (MESSAGE-CONTEXT "
          b"MESSAGE-ID)] {34}\r\nMessage-Context: voice-message\r\n\r\n)\r\n"
          b"+ go on\r\n"
          b"a1 NO [NONEXISTENT] Mailbox doesn't exist: Voicemail\r\n"
          b"* 3 FETCH (FLAGS () UID 9 BODY[HEADER.FIELDS (X)] \"q\\\"uoted\")\r\n"
          b"a2 ok done\r\n")


def read_all(chunks) -> list:
    r = ResponseReader()
    out = []
    for chunk in chunks:
        r.feed(chunk)
        while (item := r.pop()) is not None:
            out.append(item)
    assert r.buffered == 0
    return out


def test_same_responses_whatever_the_chunking():
    whole = read_all([STREAM])
    assert read_all([STREAM[i:i + 1] for i in range(len(STREAM))]) == whole
    assert [type(x) for x in whole] == [Untagged, Untagged, Continuation, Tagged, Untagged,
                                        Tagged]
    assert whole[3] == Tagged(b"a1", b"NO", b"[NONEXISTENT] Mailbox doesn't exist: Voicemail")
    assert whole[5].status == b"OK"  # status is case-insensitive


def test_fetch_items_with_literal_and_quoted_values():
    items = read_all([STREAM])
    num, fetched = fetch_items(items[1].tokens())
    assert num == 2 and fetched[b"UID"] == b"7"
    assert fetched[b"FLAGS"] == [b"\\Seen", b"\\Deleted"]
    body = fetched[b"BODY[HEADER.FIELDS (MESSAGE-CONTEXT MESSAGE-ID)]"]
    assert body == b"Message-Context: voice-message\r\n\r\n"
    num, fetched = fetch_items(items[4].tokens())
    assert num == 3 and fetched[b"FLAGS"] == []
    assert fetched[b"BODY[HEADER.FIELDS (X)]"] == b'q"uoted'
    assert fetch_items(items[0].tokens()) is None  # not a FETCH


def test_a_literal_holding_crlf_and_parentheses_is_data_not_syntax():
    payload = b"a) (b\r\n* 9 FETCH (\r\nc1 OK fake\r\n"
    raw = b"* 1 FETCH (UID 1 BODY[] {%d}\r\n%s)\r\nc1 OK real\r\n" % (len(payload), payload)
    items = read_all([raw[:20], raw[20:]])
    assert len(items) == 2 and items[1] == Tagged(b"c1", b"OK", b"real")
    assert fetch_items(items[0].tokens())[1][b"BODY[]"] == payload


def test_a_literal_shorter_than_its_data_is_an_error_not_a_hang():
    with pytest.raises(RemoteProtocolError):
        parse(b"1 FETCH (BODY[] {3}\r\nabcd\r\n)")


def test_nil_and_nested_lists():
    assert parse(b"1 FETCH (X NIL Y (a (b c)) Z \"\")") == [
        b"1", b"FETCH", [b"X", None, b"Y", [b"a", [b"b", b"c"]], b"Z", b""]]


@pytest.mark.parametrize("raw", [b"1 FETCH (UID 1", b"1 FETCH UID 1)", b'1 FETCH ("open)',
                                 b"1 FETCH (BODY[HEADER 1)", b"1 FETCH (UID {5}\r\nab)"])
def test_malformed_tokens_are_protocol_errors(raw):
    with pytest.raises(RemoteProtocolError):
        parse(raw)


def test_odd_fetch_items_are_a_protocol_error():
    with pytest.raises(RemoteProtocolError):
        fetch_items(parse(b"1 FETCH (UID 1 FLAGS)"))


def test_not_an_imap_response():
    r = ResponseReader()
    r.feed(b"SSH-2.0-OpenSSH_9.2\r\n")
    with pytest.raises(RemoteProtocolError):
        r.pop()


def test_bounds_on_lines_and_literals():
    r = ResponseReader(max_line=100)
    r.feed(b"* " + b"x" * 200)  # no CRLF yet: refused before it grows further
    with pytest.raises(RemoteProtocolError):
        r.pop()
    r = ResponseReader(max_response=1000)
    r.feed(b"* 1 FETCH (BODY[] {5000}\r\n")  # refused at the announcement, not after 5000 bytes
    with pytest.raises(RemoteProtocolError):
        r.pop()
