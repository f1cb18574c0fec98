"""What one Sieve request says: header fields decoded and cleaned, the request assembled."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from mailcall.core.sansio import RemoteProtocolError
from mailcall.sieve.bridge_server import LIMITS
from mailcall.sieve.mail_facts import MAX_FIELDS, RequestReader, parse_fields
from mailcall.sieve.script_protocol import serialize_request
from tests.sieve.support import ALICE_ENV


def test_parse_fields_is_defensive():
    fields = parse_fields(b"subject=a%0D%0ABcc%3A%20x\nsubject=second\nnoequals\nFROM=%E9\n")
    assert fields["subject"] == "a Bcc: x"  # CR/LF gone, first value kept
    assert fields["from"] == "\ufffd"


def test_parse_fields_follows_the_one_text_rule():
    """What reaches an SMS or a log line has no DEL, C1, bidi or zero-width character
    (core.text.display_text), not merely no C0 control."""
    raw = quote("Bob\x7f \u202eevil\u202c\x85 \u200bClient\u2028x").encode()
    assert parse_fields(b"from=" + raw + b"\n")["from"] == "Bob evil Client x"


def test_parse_fields_keeps_a_bounded_number_of_fields():
    data = b"".join(b"h%d=v\n" % n for n in range(MAX_FIELDS + 10))
    fields = parse_fields(data)
    assert len(fields) == MAX_FIELDS and "h0" in fields and f"h{MAX_FIELDS}" not in fields


def read(raw: bytes):
    reader = RequestReader(LIMITS)
    return reader.feed(raw) or reader.feed(b"")


def test_request_envelope_from_arguments_else_environment():
    plain = read(serialize_request(["notify"], ALICE_ENV, b"subject=x\n"))
    assert (plain.verb, plain.recipient, plain.sender) == (
        "notify", "alice@stockinox.example", "bob@example.net")
    assert plain.fields == {"subject": "x"}
    given = read(serialize_request(["notify", "carole@stockinox.example", "eve@example.org"],
                                   ALICE_ENV))
    assert (given.recipient, given.sender) == ("carole@stockinox.example", "eve@example.org")


def test_request_cut_before_its_arguments_is_a_protocol_error():
    reader = RequestReader(LIMITS)
    with pytest.raises(RemoteProtocolError):
        reader.feed(b"GARBAGE\n")
        reader.feed(b"")
