"""9 on a message already marked heard: "saved" is said only once its \\Seen stands.

The mark of a message heard is written in the background (test_seen_background.py);
"saved" confirms it, so it waits for that mark, and when the server is gone or frozen
under it the caller hears the apology, never "saved". Real peers: the private Dovecot
of support.py behind the relay of test_flags_and_faults.py (which cuts the connection on
the STORE, or holds it past the store's timeout), the scripted caller of phone.py.
"""

from __future__ import annotations

import asyncio

import pytest

from .phone import Phone, Press
from .support import cleanup, start_mailboxes
from .test_flags_and_faults import AUDIO, MENU_WAIT, Relay, call, flags, pin_then


class Down(Relay):
    """The relay, with the server gone (`cut`) or frozen (`hold`) for good once the first
    STORE reached it: later connections are closed at once, or never answered."""

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        if not self.fired:
            await super()._client(reader, writer)
            return
        try:
            if not self.cut:
                while await reader.read(65536):  # frozen: read, never answer
                    pass
        finally:
            writer.close()


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


def heard_then_9(boxes, relay: Relay) -> Phone:
    """The first voicemail plays to its end (its \\Seen queued), then 9 at the menu."""
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    return call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                      Press(MENU_WAIT, key="9"),
                                      Press(MENU_WAIT, key="#"))), relay)


@pytest.mark.parametrize("fault", ["cut", "frozen"])
def test_saved_is_not_said_for_a_mark_the_server_did_not_write(boxes, fault):
    """The STORE of the heard message is cut with its connection (server gone), or held
    past the store's 3 s timeout (server frozen), and no new session can be opened: 9
    gets the apology, not "saved", and the next message is not presented (the old code
    said "saved" at once and moved on). The message stays new, as the caller was told."""
    relay = Down(boxes.dovecot.imap_port, b" STORE ",
                  **({"cut": True} if fault == "cut" else {"hold": 4.0}))
    phone = heard_then_9(boxes, relay)
    assert relay.fired == 1 and not phone.rules, phone.commands
    assert not phone.streams("^vm-msgsaved$"), phone.streams()
    assert phone.streams(r"/phrases/unavailable-en/"), phone.streams()
    assert len(phone.streams(r"/vm-\d+$")) == 1  # the second message was not presented
    if fault == "cut":  # frozen: the held STORE reaches Dovecot late, after the call gave up
        assert flags(boxes, "Voicemail") == [set(), set()]


def test_saved_is_said_when_a_new_session_writes_the_mark(boxes):
    """Only the session under the STORE was cut: the wait for the mark opens a new one,
    which writes it, and then "saved" is true."""
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", cut=True)
    phone = heard_then_9(boxes, relay)
    assert relay.fired == 1
    assert phone.streams("^vm-msgsaved$"), phone.streams()
    assert flags(boxes, "Voicemail")[0] == {"\\Seen"}


def test_saved_is_said_once_the_mark_stands(boxes):
    """The same 9 with the STORE slow but answered: "saved" comes, after the flag."""
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", hold=1.4)
    phone = heard_then_9(boxes, relay)
    assert relay.fired == 1
    assert phone.streams("^vm-msgsaved$"), phone.streams()
    assert not phone.streams(r"/phrases/unavailable-en/")
    assert flags(boxes, "Voicemail")[0] == {"\\Seen"}


def test_9_during_the_audio_waits_for_its_save(boxes):
    """9 while the audio plays is one save, waited for: with the STORE cut, the apology,
    never "saved" (the old code queued a background mark and said "saved")."""
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", cut=True)
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(AUDIO, key="9"),
                                       Press(MENU_WAIT, key="#"))), relay)
    assert relay.fired == 1 and not phone.rules, phone.commands
    assert not phone.streams("^vm-msgsaved$"), phone.streams()
    assert phone.streams(r"/phrases/unavailable-en/"), phone.streams()
