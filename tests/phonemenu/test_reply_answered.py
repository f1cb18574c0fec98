"""A reply by phone leaves the original \\Answered, as a mail client's reply does.

Over the real AGI server and a real Dovecot (support.py); the e-mail reply goes to a
real SMTP relay (aiosmtpd), the voice reply to the recording depositor.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.agi.harness import serving
from tests.notifications.support import Relay, ScriptedHandler

from .phone import Phone, Press, run_phone
from .support import LIVE_POLICY, PIN, cleanup, plain_mail, start_mailboxes

pytestmark = pytest.mark.dovecot

AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
MENU_WAIT = r"WAIT FOR DIGIT"


@pytest.fixture
def relay():
    with Relay(ScriptedHandler()) as r:
        yield r


@pytest.fixture
def boxes(dovecot_factory, relay):
    text = LIVE_POLICY.read_text() + f'\n[channels]\nrelay = "{relay.address}"\n'
    made = start_mailboxes(dovecot_factory, text)
    yield made
    cleanup(made)


def call(boxes, *rules: Press) -> Phone:
    phone = Phone([Press("GET DATA agent-pass", digits=PIN), *rules])

    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address)
    return asyncio.run(go())


def test_an_email_replied_to_by_phone_is_answered(boxes, relay):
    mail = plain_mail("Devis", "Pouvez-vous me rappeler ?", sender="Jean <jean@example.org>")
    boxes.mail("alice", mail)
    other = plain_mail("Autre", "Sans réponse", sender="Paul <paul@example.org>")
    boxes.mail("alice", other)
    # Newest first: "Autre" is read first, skipped with 6 (next), then "Devis" replied to.
    [(first, before), (second, _)] = boxes.folder("alice", "INBOX")
    assert "\\Answered" not in before
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="2"), Press(MENU_WAIT, key="6"),
                 Press(MENU_WAIT, key="3"), Press(MENU_WAIT, key="1"))
    assert not phone.missing, phone.missing
    assert len(relay.handler.accepted) == 1
    assert phone.streams(r"/phrases/reply_sent-en/")
    flags = dict(boxes.folder("alice", "INBOX"))
    assert "\\Answered" in flags[first]      # "Devis", replied to
    assert "\\Answered" not in flags[second]  # "Autre", only read


def test_a_colleagues_voicemail_replied_to_by_phone_is_answered(boxes):
    boxes.voicemail("alice", "c1", caller="202", name="Bernard")
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="1"), Press(AUDIO, key="#"),
                 Press(MENU_WAIT, key="3"), Press(MENU_WAIT, key="1"))
    assert not phone.missing, phone.missing
    assert len(boxes.depositor.messages) == 1
    assert phone.streams(r"/phrases/reply_sent-en/")
    [(_uid, flags)] = boxes.folder("alice", "Voicemail")
    assert "\\Answered" in flags and "\\Seen" in flags
