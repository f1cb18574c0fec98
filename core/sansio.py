"""What every sans-I/O protocol machine of mailcall shares: one sentinel, one error family.

FastAGI (agi/protocol.py), AMI (ami/protocol.py), Dovecot's script socket
(sieve/script_protocol.py) and SMTP/LMTP replies (deposit/mail_protocol.py) are
machines fed bytes, h11-style: ``next_event()`` answers :data:`NEED_DATA` when
a complete event is not there yet, and a peer that breaks its protocol raises a
:class:`RemoteProtocolError`. Callers can then handle every machine alike
(``except ProtocolError`` ends one connection, never the server).
"""

from __future__ import annotations


class ProtocolError(Exception):
    """A protocol was broken; the message says by whom and how."""


class RemoteProtocolError(ProtocolError):
    """The peer sent something its protocol does not allow, or more than our bounds."""


class LocalProtocolError(ProtocolError):
    """This side tried something the protocol does not allow (pipelining, injection)."""


class NeedData:
    """The type of :data:`NEED_DATA`; there is only ever the one instance."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA = NeedData()
"""Returned by ``next_event()`` when more bytes must arrive first."""


class ByteReceiver:
    """``receive_data`` as every byte-fed machine has it: the bytes are appended to the
    machine's own ``_buf`` (copied before this returns, so a caller may hand a view of a
    buffer it reuses, as the FastAGI server does), and ``b""`` marks end of file."""

    __slots__ = ()
    _buf: bytearray
    _eof: bool

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Feed bytes from the peer; ``b""`` means the peer closed."""
        if data:
            if self._eof:
                raise RuntimeError("data received after end of file")
            self._buf += data
        else:
            self._eof = True
