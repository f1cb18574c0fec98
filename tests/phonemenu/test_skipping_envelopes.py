"""Skipping a message during its envelope (6 6 6 quickly) fetches nothing for it.

Real peers: the private Dovecot of support.py filled by mailcall's deposit path, the
real AGI server, mail store and decoder, the scripted caller of phone.py. Which
messages' audio was fetched is noted on the real session (its ``audio`` still runs).
"""

from __future__ import annotations

import pytest

from mailcall.mailstore.store import MailboxSession
from mailcall.phonemenu.presenting import Presenter

from .phone import Phone, Press
from .support import cleanup, start_mailboxes
from .test_flags_and_faults import AUDIO, call, pin_then

ENVELOPE = r"STREAM FILE \S*/call-\S*/[0-9a-f]{12}-\d+ "
"""The first sentence of an envelope, spoken into the call's folder."""


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


def test_a_message_skipped_during_its_envelope_has_its_audio_never_fetched(
        boxes, monkeypatch):
    """6 during the first message's audio, then 6 during each of the next two envelopes:
    the third message, skipped before it was heard and never made ahead, has no FETCH of
    its audio (the old code let its fetch start with the next envelope's first sound,
    ahead of the message the caller wanted); the fourth is heard."""
    for n in range(5):
        boxes.voicemail("alice", f"c{n}", caller=f"+3361234567{n}")
    presented: list[int] = []
    fetched: list[int] = []
    real_present, real_audio = Presenter.present, MailboxSession.audio

    async def noted_present(self, effect):
        presented.append(effect.ref.uid)
        return await real_present(self, effect)

    async def noted_audio(self, message):
        fetched.append(message.uid)
        return await real_audio(self, message)

    monkeypatch.setattr(Presenter, "present", noted_present)
    monkeypatch.setattr(MailboxSession, "audio", noted_audio)
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),
        Press(AUDIO, key="6"),
        Press(ENVELOPE, key="6"),
        Press(ENVELOPE, key="6"),
        Press(AUDIO, key="#"))))
    assert not phone.rules, phone.commands
    assert len(presented) >= 4, (presented, phone.commands)
    first, _second, third, fourth = presented[:4]  # the second was made ahead: fetched
    assert first in fetched and fourth in fetched, (presented, fetched)
    assert third not in fetched, (presented, fetched)
    assert len(phone.streams(r"/vm-\d+$")) == 2, phone.commands
