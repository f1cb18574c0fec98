"""One rule for "was this filed message deposited by mailcall" (issue 11): the lamp's
count and the phone menu's mailbox both ask :func:`mailcall.deposit.origin.deposit_kind`."""

from __future__ import annotations

from email.parser import BytesHeaderParser

import pytest

from mailcall.deposit import origin
from mailcall.deposit.seal import SEAL_HEADER, deposit_token
from mailcall.mailstore import summary
from mailcall.mwi import imap as mwi_imap
from mailcall.mwi.origin import counts_as_voice

KEY = bytes(range(32))
OTHER_KEY = bytes(32)
ALICE = "alice@example.test"
MSGID = "<voice.1.abc@example.test>"


def block(context: str = "voice-message", *, to: str = ALICE, key: bytes = KEY,
          msgid: str | None = MSGID, sealed_context: str | None = None,
          extra: str = "") -> bytes:
    lines = [f"Message-Context: {context}"]
    if msgid is not None:
        lines.append(f"Message-ID: {msgid}")
        token = deposit_token(key, msgid, to, sealed_context or context, at=1_700_000_000)
        lines.append(f"{SEAL_HEADER}: {token}")
    return ("\r\n".join(lines) + "\r\n" + extra + "\r\n").encode()


def kind(raw: bytes, *, key: bytes | None = KEY, recipient: str = ALICE):
    return origin.deposit_kind(BytesHeaderParser().parsebytes(raw), key=key, recipient=recipient)


def test_both_readers_use_the_one_rule():
    assert summary.deposit_kind is origin.deposit_kind
    assert summary.FETCHED is origin.FETCHED is mwi_imap.FETCHED
    assert not hasattr(mwi_imap, "token_valid")


@pytest.mark.parametrize(("raw", "expected"), [
    (block(), "voice"),
    (block("fax-message"), "fax"),
    (block("voice-message; charset=x (comment)"), "voice"),
    (block(to="bob@example.test"), None),                     # sealed for another user
    (block(key=OTHER_KEY), None),                             # another key
    (block("voice-messages"), None),                          # a longer token
    (block("voice-message", sealed_context="fax-message"), None),
    (block(msgid=None), None),                                # no seal at all
    (block(extra="Message-Context: fax-message\r\n"), None),  # two contexts
])
def test_deposit_kind(raw, expected):
    assert kind(raw) == expected
    assert counts_as_voice(raw, key=KEY, recipient=ALICE) is (expected == "voice")


def test_without_a_key_nothing_is_proven():
    assert kind(block(), key=None) is None
