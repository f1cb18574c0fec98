"""The four sans-I/O machines share one sentinel and one error family (issue 11 §3)."""

from __future__ import annotations

import pytest

from mailcall.agi import protocol as agi
from mailcall.ami import protocol as ami
from mailcall.core import sansio
from mailcall.deposit import mail_protocol as smtp
from mailcall.sieve import script_protocol as sieve


def test_one_need_data_sentinel():
    assert agi.NEED_DATA is ami.NEED_DATA is sieve.NEED_DATA is sansio.NEED_DATA
    assert repr(sansio.NEED_DATA) == "NEED_DATA"


def test_one_error_family():
    for error in (agi.RemoteProtocolError, ami.RemoteProtocolError, sieve.ProtocolError,
                  smtp.ProtocolError):
        assert issubclass(error, sansio.RemoteProtocolError)
    for error in (agi.LocalProtocolError, ami.LocalProtocolError):
        assert issubclass(error, sansio.LocalProtocolError)
    assert issubclass(sansio.RemoteProtocolError, sansio.ProtocolError)
    assert issubclass(sansio.LocalProtocolError, sansio.ProtocolError)
    assert not issubclass(sansio.RemoteProtocolError, sansio.LocalProtocolError)


def _drain(conn) -> None:
    while conn.next_event() is not sansio.NEED_DATA:
        pass


def test_a_broken_peer_raises_the_shared_error():
    """Fed garbage, each machine raises what ``except ProtocolError`` catches."""
    agi_conn = agi.Connection()
    agi_conn.receive_data(b"not an environment line\n\n")
    with pytest.raises(sansio.ProtocolError):
        _drain(agi_conn)
    ami_conn = ami.Connection()
    ami_conn.receive_data(b"HTTP/1.1 200 OK\r\n\r\n")
    with pytest.raises(sansio.ProtocolError):
        _drain(ami_conn)
    with pytest.raises(sansio.ProtocolError):
        smtp.ReplyParser().feed(b"garbage\r\n")


def test_one_receive_data_rule():
    """Bytes copied (the FastAGI server hands views of one shared buffer), b"" is the end,
    data after the end is a bug of the caller."""
    assert agi.Connection.receive_data is ami.Connection.receive_data \
        is sansio.ByteReceiver.receive_data
    shared = bytearray(b"agi_network: yes\n")
    conn = agi.Connection()
    conn.receive_data(memoryview(shared))
    shared[:] = b"x" * len(shared)  # the server reuses its buffer at once
    assert bytes(conn._buf) == b"agi_network: yes\n"  # a copy, not a view
    conn.receive_data(b"")
    with pytest.raises(RuntimeError):
        conn.receive_data(b"more")
