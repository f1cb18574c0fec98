"""A message heard is marked \\Seen in the background: the next one does not wait for it,
and a hang-up right after it keeps the flag.

Real peers: the private Dovecot of support.py, reached through the TCP relay of
test_flags_and_faults.py (:class:`Relay`), which holds the first STORE for a while (a
slow server) or cuts the connection on it (a server gone under the session); the
scripted caller of phone.py. What a mail client sees afterwards is read back from
Dovecot; what the lamp hears, through a real plugin on the runtime's plugin manager.
"""

from __future__ import annotations

import re

from .phone import Phone, Press
from .test_flags_and_faults import AUDIO, Relay, call, flags, pin_then, status

ENVELOPE = r"STREAM FILE \S*/call-\S*/[0-9a-f]{12}-0001 "
"""The first sentence of an envelope, spoken into the call's folder."""
AUDIO_COMMAND = ("STREAM FILE", "SAY NUMBER")


def after_key(phone: Phone, index: int) -> tuple[float, str]:
    """(seconds, command): the first audio command after the caller's `index`-th key."""
    pressed = phone.pressed_at[index][0]
    return next((t - pressed, line) for t, line in phone.sent_at
                if t > pressed and line.startswith(AUDIO_COMMAND))


def test_the_next_message_does_not_wait_for_a_slow_store(boxes):
    """The STORE of the message just heard takes 2 s: "6" still starts the next message
    at once (its envelope, made ahead), not "one moment please" a second later; the
    flag is there once the call is over, and the message whose audio was never reached
    stays new."""
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", hold=2.0)
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(AUDIO, key="6"),
                                       Press(ENVELOPE, hangup=True))), relay)
    assert relay.fired == 1, phone.commands
    took, command = after_key(phone, 1)
    assert re.match(ENVELOPE, command), command  # the old code said "one moment" first
    assert took < 0.5, took
    assert status(phone) == "MAILBOX_DONE"
    assert flags(boxes, "Voicemail") == [{"\\Seen"}, set()]
    assert [r for _u, _f, r in boxes.lamp.changes] == ["heard"]


def test_heard_then_hang_up_at_once_keeps_the_flag(boxes):
    """The caller presses 6 after the audio began and hangs up as the next envelope
    starts, while the STORE is still held: the call's end waits for it."""
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", hold=1.0)
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(AUDIO, key="6", hangup=True))),
                 relay)
    assert relay.fired == 1 and not phone.rules, phone.commands
    assert flags(boxes, "Voicemail") == [{"\\Seen"}, set()]
    assert [r for _u, _f, r in boxes.lamp.changes] == ["heard"]


def test_a_store_on_a_broken_session_is_written_on_the_next_one(boxes):
    """The connection is cut on the STORE: the mark is not lost (it is written on the
    session the call opens next, here at its end), the lamp is told once, after it
    stands, and the caller heard no apology for it."""
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", cut=True)
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(AUDIO, key="6"),
                                       Press(ENVELOPE, hangup=True))), relay)
    assert relay.fired == 1, phone.commands
    assert not phone.streams("unavailable|try-again|sorry"), phone.streams()
    assert flags(boxes, "Voicemail") == [{"\\Seen"}, set()]
    assert [r for _u, _f, r in boxes.lamp.changes] == ["heard"]


def test_a_save_after_a_mark_waits_for_it_in_order(boxes):
    """9 (save) during the next message's envelope, right after the previous one was
    heard: the save's STORE goes after the background one on the one session, and
    "saved" is said only once it stands; both flags stand."""
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", hold=1.0)
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(AUDIO, key="6"),
                                       Press(ENVELOPE, key="9"),
                                       Press("STREAM FILE vm-msgsaved", hangup=True))),
                 relay)
    assert not phone.rules, phone.commands
    assert flags(boxes, "Voicemail") == [{"\\Seen"}, {"\\Seen"}]
    assert [r for _u, _f, r in boxes.lamp.changes] == ["heard", "saved"]
