"""The ManageSieve client machine's bytes (RFC 5804), without a server: byte by byte,
literals, refusals of ours and of the peer's; against a real Dovecot in
test_client_vacation_dovecot.py."""

from __future__ import annotations

import pytest

from mailcall.core.sansio import NEED_DATA, LocalProtocolError, RemoteProtocolError
from mailcall.sieve.managesieve_protocol import Atom, ManageSieveClient, State

GREETING = (b'"IMPLEMENTATION" "Dovecot Pigeonhole"\r\n"SIEVE" "fileinto vacation"\r\n'
            b'"SASL" "PLAIN LOGIN"\r\n"VERSION" "1.0"\r\nOK "Dovecot ready."\r\n')


def fed(machine: ManageSieveClient, data: bytes, step: int = 1):
    """Feed `data` `step` bytes at a time; the one reply that completes."""
    replies = []
    for i in range(0, len(data), step):
        machine.receive_data(data[i:i + step])
        while machine.state not in (State.CLOSED, State.ERROR) and (
                event := machine.next_event()) is not NEED_DATA:
            replies.append(event)
    return replies


def test_greeting_byte_by_byte_then_a_literal_script():
    m = ManageSieveClient()
    [greeting] = fed(m, GREETING)
    assert greeting.ok and greeting.lines[2] == ("SASL", "PLAIN LOGIN")
    assert m.state is State.READY
    assert m.send("GETSCRIPT", "rc") == b'GETSCRIPT "rc"\r\n'
    script = 'require "vacation";\r\nvacation "é";\r\n'.encode()
    [reply] = fed(m, b"{%d}\r\n" % len(script) + script + b"\r\nOK \"Getscript completed.\"\r\n",
                  step=3)
    assert reply.lines == ((script.decode(),),)


def test_no_with_code_and_listscripts():
    m = ManageSieveClient()
    fed(m, GREETING, step=len(GREETING))
    m.send("PUTSCRIPT", "x", b"keep;")
    [no] = fed(m, b'NO (QUOTA/MAXSIZE) "Script too big."\r\n', step=50)
    assert (no.kind, no.code_name(), no.text) == ("NO", "QUOTA/MAXSIZE", "Script too big.")
    m.send("LISTSCRIPTS")
    [ok] = fed(m, b'"roundcube" ACTIVE\r\n"old"\r\nOK "Listscripts completed."\r\n', step=7)
    assert ok.lines == (("roundcube", Atom("ACTIVE")), ("old",))


def test_arguments_are_never_commands():
    m = ManageSieveClient()
    fed(m, GREETING, step=len(GREETING))
    sent = m.send("GETSCRIPT", 'a"\r\nDELETESCRIPT "b')
    assert sent.startswith(b"GETSCRIPT {") and sent.count(b"\r\n") == 3  # a literal
    m2 = ManageSieveClient()
    fed(m2, GREETING, step=len(GREETING))
    assert m2.send("PUTSCRIPT", 'q"\\', b"keep;") == b'PUTSCRIPT "q\\"\\\\" {5+}\r\nkeep;\r\n'
    with pytest.raises(LocalProtocolError):
        m2.send("LISTSCRIPTS\r\nLOGOUT")


def test_a_second_command_before_the_answer_is_refused():
    m = ManageSieveClient()
    fed(m, GREETING, step=len(GREETING))
    m.send("LISTSCRIPTS")
    with pytest.raises(LocalProtocolError):
        m.send("LISTSCRIPTS")


def test_bytes_pipelined_after_starttls_ok_are_refused():
    """What follows STARTTLS's OK in the same clear-text read is not the TLS server's:
    restart() refuses it instead of parsing it as the new greeting."""
    m = ManageSieveClient()
    fed(m, GREETING, step=len(GREETING))
    m.send("STARTTLS")
    m.receive_data(b'OK "Begin TLS negotiation now."\r\n' + GREETING)  # one clear read
    ok = m.next_event()  # the connection reads one reply, then starts TLS
    assert ok is not NEED_DATA and ok.ok and m.state is State.READY
    with pytest.raises(RemoteProtocolError, match="data after STARTTLS's OK"):
        m.restart()
    assert m.state is State.ERROR
    with pytest.raises(RemoteProtocolError):
        m.next_event()
    # Nothing after the OK: the greeting over TLS is read as usual.
    m = ManageSieveClient()
    fed(m, GREETING, step=len(GREETING))
    m.send("STARTTLS")
    fed(m, b'OK "Begin TLS negotiation now."\r\n', step=100)
    m.restart()
    [greeting] = fed(m, GREETING, step=len(GREETING))
    assert greeting.ok and m.state is State.READY


def test_a_broken_or_huge_server_reply_is_refused():
    m = ManageSieveClient()
    with pytest.raises(RemoteProtocolError, match="literal"):
        fed(m, b"{99999999}\r\n")
    m = ManageSieveClient()
    with pytest.raises(RemoteProtocolError, match="line over"):
        fed(m, b'"' + b"x" * 70000, step=70001)
    m = ManageSieveClient()
    m.receive_data(b'OK "cut')
    m.receive_data(b"")
    with pytest.raises(RemoteProtocolError, match="closed"):
        m.next_event()


def test_bye_closes():
    m = ManageSieveClient()
    [bye] = fed(m, b'BYE "Too many connections"\r\n', step=100)
    assert bye.kind == "BYE" and m.state is State.CLOSED
