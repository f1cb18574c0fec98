"""The SMTP/LMTP client state machine, fed one byte at a time."""

from __future__ import annotations

import pytest

from mailcall.core.sansio import LocalProtocolError, RemoteProtocolError
from mailcall.deposit.delivery import parse_target
from mailcall.deposit.mail_protocol import (
    NEED_DATA,
    Delivered,
    Failed,
    MailTransaction,
    ReplyParser,
    dot_stuff,
)


def converse(tx: MailTransaction, script: list[tuple[bytes, bytes]]) -> list:
    """`script`: (server bytes, client bytes expected after them). Feeds one byte at a time."""
    events = []
    for server, expected in script:
        for i in range(len(server)):
            events += tx.receive_data(server[i : i + 1])
        assert tx.data_to_send() == expected, server
    return events


MSG = b"Subject: hi\r\n\r\n.leading dot\r\nbody\r\n"


def test_lmtp_gives_one_result_per_recipient():
    tx = MailTransaction(
        lmtp=True,
        hostname="pbx.example",
        sender="mailcall@example.test",
        recipients=["a@example.test", "b@example.test", "c@example.test"],
        message=MSG,
    )
    events = converse(
        tx,
        [
            (b"220 dovecot ready\r\n", b"LHLO pbx.example\r\n"),
            (
                b"250-dovecot\r\n250-8BITMIME\r\n250 PIPELINING\r\n",
                b"MAIL FROM:<mailcall@example.test>\r\n",
            ),
            (b"250 2.1.0 OK\r\n", b"RCPT TO:<a@example.test>\r\n"),
            (b"250 2.1.5 OK\r\n", b"RCPT TO:<b@example.test>\r\n"),
            (b"550 5.1.1 <b@example.test> User doesn't exist\r\n", b"RCPT TO:<c@example.test>\r\n"),
            (b"250 2.1.5 OK\r\n", b"DATA\r\n"),
            (b"354 OK\r\n", b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\n"),
            (b"250 2.0.0 <a@example.test> Saved\r\n", b""),
            (b"452 4.2.2 <c@example.test> Quota exceeded\r\n", b"QUIT\r\n"),
        ],
    )
    assert tx.done
    by = {e.recipient: e for e in events}
    assert isinstance(by["a@example.test"], Delivered)
    assert by["a@example.test"].reply.code == 250
    assert isinstance(by["b@example.test"], Failed) and by["b@example.test"].permanent
    assert by["b@example.test"].stage == "rcpt"
    assert isinstance(by["c@example.test"], Failed) and not by["c@example.test"].permanent
    assert by["c@example.test"].stage == "message"
    assert len(events) == 3


def test_smtp_one_final_reply_for_all():
    tx = MailTransaction(
        lmtp=False,
        hostname="pbx",
        sender="s@x.test",
        recipients=["a@x.test", "b@x.test"],
        message=b"x\r\n",
    )
    events = converse(
        tx,
        [
            (b"220 mx\r\n", b"EHLO pbx\r\n"),
            (b"250 mx\r\n", b"MAIL FROM:<s@x.test>\r\n"),
            (b"250 ok\r\n", b"RCPT TO:<a@x.test>\r\n"),
            (b"250 ok\r\n", b"RCPT TO:<b@x.test>\r\n"),
            (b"250 ok\r\n", b"DATA\r\n"),
            (b"354 go\r\n", b"x\r\n.\r\n"),
            (b"250 queued as 1234\r\n", b"QUIT\r\n"),
        ],
    )
    assert [type(e).__name__ for e in events] == ["Delivered", "Delivered"]


@pytest.mark.parametrize(
    ("reply", "stage", "permanent"),
    [
        (b"421 4.3.2 shutting down\r\n", "greeting", False),
        (b"554 no service\r\n", "greeting", True),
    ],
)
def test_greeting_refusal_fails_everyone(reply, stage, permanent):
    tx = MailTransaction(
        lmtp=True, hostname="h", sender="s@x.test", recipients=["a@x.test"], message=b"x"
    )
    events = converse(tx, [(reply, b"QUIT\r\n")])
    assert events == [Failed("a@x.test", events[0].reply, permanent, stage)]


def test_mail_from_refused_temporarily():
    tx = MailTransaction(
        lmtp=True, hostname="h", sender="s@x.test", recipients=["a@x.test"], message=b"x"
    )
    events = converse(
        tx,
        [
            (b"220 hi\r\n", b"LHLO h\r\n"),
            (b"250 hi\r\n", b"MAIL FROM:<s@x.test>\r\n"),
            (b"451 4.3.0 try later\r\n", b"QUIT\r\n"),
        ],
    )
    assert len(events) == 1 and not events[0].permanent and events[0].stage == "mail"


def test_all_recipients_refused_sends_no_data():
    tx = MailTransaction(
        lmtp=True, hostname="h", sender="s@x.test", recipients=["a@x.test"], message=b"x"
    )
    events = converse(
        tx,
        [
            (b"220 hi\r\n", b"LHLO h\r\n"),
            (b"250 hi\r\n", b"MAIL FROM:<s@x.test>\r\n"),
            (b"250 ok\r\n", b"RCPT TO:<a@x.test>\r\n"),
            (b"550 no such user\r\n", b"QUIT\r\n"),
        ],
    )
    assert len(events) == 1 and events[0].permanent


def test_connection_lost_before_final_reply_is_temporary():
    tx = MailTransaction(
        lmtp=True, hostname="h", sender="s@x.test", recipients=["a@x.test"], message=b"x"
    )
    converse(
        tx,
        [
            (b"220 hi\r\n", b"LHLO h\r\n"),
            (b"250 hi\r\n", b"MAIL FROM:<s@x.test>\r\n"),
            (b"250 ok\r\n", b"RCPT TO:<a@x.test>\r\n"),
            (b"250 ok\r\n", b"DATA\r\n"),
            (b"354 go\r\n", b"x\r\n.\r\n"),
        ],
    )
    events = tx.connection_lost("reset")
    assert len(events) == 1 and not events[0].permanent and events[0].stage == "message"
    assert tx.connection_lost() == []  # decided once only


def test_garbage_from_the_server_is_a_temporary_failure():
    tx = MailTransaction(
        lmtp=True, hostname="h", sender="s@x.test", recipients=["a@x.test"], message=b"x"
    )
    events = tx.receive_data(b"HTTP/1.1 400 Bad Request\r\n")
    assert len(events) == 1 and not events[0].permanent and tx.done


def _replies(parser: ReplyParser, data: bytes) -> list:
    parser.receive_data(data)
    out = []
    while (reply := parser.next_event()) is not NEED_DATA:
        out.append(reply)
    return out


def test_reply_parser_multiline_and_bare_lf():
    parser = ReplyParser()
    replies = []
    for byte in b"250-first\n250-second\r\n250 last\r\n220\r\n":
        replies += _replies(parser, bytes([byte]))
    assert [(r.code, r.lines) for r in replies] == [
        (250, ("first", "second", "last")),
        (220, ("",)),
    ]
    with pytest.raises(RemoteProtocolError):
        _replies(ReplyParser(), b"250-a\r\n251 b\r\n")
    with pytest.raises(RemoteProtocolError):
        _replies(ReplyParser(), b"2" * 5000)


def test_reply_parser_end_of_file_inside_a_reply_is_an_error():
    """b"" marks the end, as for every byte-fed machine: a reply cut there is refused."""
    parser = ReplyParser()
    assert _replies(parser, b"250-first\r\n") == []
    parser.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="in the middle of a reply"):
        parser.next_event()
    clean = ReplyParser()
    assert [r.code for r in _replies(clean, b"221 bye\r\n")] == [221]
    clean.receive_data(b"")
    assert clean.next_event() is NEED_DATA


def test_a_reply_before_its_command_is_refused():
    """No pipelining: a 250 in the same read as the greeting answers nothing mailcall
    sent (LHLO is not even handed out), so the transaction ends as a protocol failure."""
    tx = MailTransaction(
        lmtp=True, hostname="h", sender="s@x.test", recipients=["a@x.test"], message=b"x"
    )
    events = tx.receive_data(b"220 ready\r\n250 too early\r\n")
    assert tx.done and len(events) == 1
    assert events[0].stage == "protocol" and not events[0].permanent
    assert "before mailcall sent its command" in events[0].reason


def test_dot_stuffing_and_line_ends():
    assert dot_stuff(b".\r\n..x\nlast") == b"..\r\n...x\r\nlast\r\n.\r\n"
    assert dot_stuff(b"") == b"\r\n.\r\n"


@pytest.mark.parametrize("bad", ["a@x.test>\r\nRCPT TO:<evil@x", "a b@x", "a@x\x00"])
def test_addresses_cannot_inject_commands(bad):
    """Our own misuse of the machine: core/sansio's LocalProtocolError (was a ValueError)."""
    with pytest.raises(LocalProtocolError, match="unusable mail address"):
        MailTransaction(lmtp=True, hostname="h", sender="s@x.test", recipients=[bad], message=b"")
    with pytest.raises(LocalProtocolError, match="unusable mail address"):
        MailTransaction(lmtp=True, hostname="h", sender=bad, recipients=["a@x.test"], message=b"")


def test_a_transaction_without_recipients_or_with_a_bad_host_name_is_refused_as_ours():
    with pytest.raises(LocalProtocolError, match="at least one recipient") as none:
        MailTransaction(lmtp=True, hostname="h", sender="s@x.test", recipients=[], message=b"")
    with pytest.raises(LocalProtocolError, match="unusable host name") as host:
        MailTransaction(lmtp=True, hostname="h\r\nQUIT", sender="s@x.test",
                        recipients=["a@x.test"], message=b"")
    for caught in (none, host):
        assert not isinstance(caught.value, ValueError)


def test_delivery_addresses():
    assert parse_target("lmtp", "unix:/run/dovecot/lmtp").unix_path == "/run/dovecot/lmtp"
    t = parse_target("smtp", "mx.example.org")
    assert (t.host, t.port) == ("mx.example.org", 25)
    t = parse_target("LMTP", "127.0.0.1:2424")
    assert (t.method, t.host, t.port) == ("lmtp", "127.0.0.1", 2424)
    t = parse_target("lmtp", "[::1]:24")
    assert (t.host, t.port) == ("::1", 24)
    for method, address in [
        ("imap", "x:1"),
        ("lmtp", "unix:relative"),
        ("lmtp", "h:port"),
        ("lmtp", ":24"),
    ]:
        with pytest.raises(ValueError):
            parse_target(method, address)


def test_prestuffed_message_is_sent_as_is():
    wire = dot_stuff(MSG)
    tx = MailTransaction(
        lmtp=True,
        hostname="h",
        sender="s@x.test",
        recipients=["a@x.test"],
        message=wire,
        stuffed=True,
    )
    events = converse(
        tx,
        [
            (b"220 hi\r\n", b"LHLO h\r\n"),
            (b"250 hi\r\n", b"MAIL FROM:<s@x.test>\r\n"),
            (b"250 ok\r\n", b"RCPT TO:<a@x.test>\r\n"),
            (b"250 ok\r\n", b"DATA\r\n"),
            (b"354 go\r\n", wire),
            (b"250 ok\r\n", b"QUIT\r\n"),
        ],
    )
    assert [type(e) for e in events] == [Delivered]
