"""Reply, forward, call back and greetings from the menu, over the real AGI server.

The mailbox is the real Dovecot of support.py; deposits go to a recording
depositor standing in for the spool (the spool itself is tested in
tests/deposit), mail replies to a real SMTP relay (aiosmtpd), Dial to the
scripted caller, which answers as the ``dial-answer`` trace does.
"""

from __future__ import annotations

import asyncio
import email
import email.policy

import pytest
import soundfile

from tests.agi.harness import serving
from tests.notifications.support import Relay, ScriptedHandler

from .phone import Phone, Press, run_phone
from .support import LIVE_POLICY, PIN, RECORDING, cleanup, plain_mail, start_mailboxes

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


def call(boxes, *rules: Press, **kw) -> Phone:
    phone = Phone([Press("GET DATA agent-pass", digits=PIN), *rules], **kw)

    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address)
    return asyncio.run(go())


LISTEN = (Press("STREAM FILE vm-onefor", key="1"), Press(AUDIO, key="#"))


def test_reply_to_a_colleague_deposits_a_voice_message_in_their_mailbox(boxes):
    boxes.voicemail("alice", "c1", caller="202", name="Bernard")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="3"), Press(MENU_WAIT, key="1"))
    assert not phone.missing, phone.missing
    assert len(phone.recorded_to) == 1 and "/spool/rec/menu-" in phone.recorded_to[0]
    [message] = boxes.depositor.messages
    assert message.mailbox == "bernard" and message.caller_number == "201"
    assert message.caller_name == "Alice Martin" and message.reason == "direct"
    assert boxes.depositor.audio[0][:4] == b"RIFF"
    assert phone.streams(r"/phrases/reply_sent-en/")


def test_reply_to_an_outside_caller_is_refused_with_a_reason(boxes):
    boxes.voicemail("alice", "c1", caller="+33612345678")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="3"), Press(MENU_WAIT, key="1"))
    assert boxes.depositor.messages == [] and phone.recorded_to == []
    assert phone.streams(r"/phrases/no_reply-en/")


def test_reply_to_an_email_is_mailed_to_the_sender_threaded_with_the_audio(boxes, relay):
    mail = plain_mail("Devis", "Pouvez-vous me rappeler ?", sender="Jean <jean@example.org>")
    mail.replace_header("Message-ID", "<devis-42@example.org>")
    mail["References"] = "<earlier-1@example.org>"
    boxes.mail("alice", mail)
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="2"), Press(MENU_WAIT, key="3"),
                 Press(MENU_WAIT, key="1"))
    assert not phone.missing, phone.missing
    [received] = relay.handler.accepted
    assert received.rcpt_tos == ["jean@example.org"]
    sent = email.message_from_bytes(received.data, policy=email.policy.default)
    assert sent["In-Reply-To"] == "<devis-42@example.org>"
    assert sent["References"] == "<earlier-1@example.org> <devis-42@example.org>"
    assert sent["Subject"] == "Re: Devis"
    assert sent["From"].addresses[0].addr_spec == "alice@stockinox.example"
    [part] = [p for p in sent.walk() if p.get_content_maintype() == "audio"]
    assert part.get_content()[:4] == b"RIFF"
    assert phone.streams(r"/phrases/reply_sent-en/")


def test_call_back_dials_the_caller_through_the_telephony_template(boxes):
    boxes.voicemail("alice", "c1", caller="+33612345678")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="3"), Press(MENU_WAIT, key="2"))
    assert [c for c in phone.commands if c.startswith("EXEC")] == [
        'EXEC Dial "PJSIP/+33612345678@trunk,5,g"\n']


def test_call_back_of_a_colleague_rings_their_extension(boxes):
    boxes.voicemail("alice", "c1", caller="202")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="3"), Press(MENU_WAIT, key="2"))
    assert [c for c in phone.commands if c.startswith("EXEC")] == ['EXEC Dial "PJSIP/202,5,g"\n']


def test_call_back_without_a_plain_number_dials_nothing(boxes):
    boxes.voicemail("alice", "c1", caller="anonymous", name="Anonymous")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="3"), Press(MENU_WAIT, key="2"))
    assert not any(c.startswith("EXEC") for c in phone.commands)
    assert "vm-nonumber" in phone.streams()


def test_forward_with_a_preface_deposits_both_in_the_colleagues_mailbox(boxes):
    boxes.voicemail("alice", "c1", caller="+33612345678", name="Client")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="8"),
                 Press("GET DATA vm-extension", digits="205"),
                 Press("GET DATA vm-forwardoptions", digits="1"))
    assert not phone.missing, phone.missing
    [message] = boxes.depositor.messages
    assert message.mailbox == "emma" and message.caller_number == "+33612345678"
    # preface and message are both the traced recording: the deposit is twice as long
    recording = soundfile.info(str(RECORDING)).duration
    assert abs(message.duration_ms / 1000 - 2 * recording) < 0.1, message.duration_ms
    assert boxes.depositor.audio[0][:4] == b"RIFF"
    assert "vm-msgforwarded" in phone.streams()


def test_forward_to_an_unknown_extension_deposits_nothing(boxes):
    boxes.voicemail("alice", "c1")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="8"),
                 Press("GET DATA vm-extension", digits="999"))
    assert boxes.depositor.messages == []
    assert "pbx-invalid" in phone.streams()


def test_a_greeting_recorded_from_the_options_replaces_the_old_one(boxes):
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="0"), Press(MENU_WAIT, key="2"))
    saved = boxes.work / "greetings" / "alice" / "busy.wav"
    assert saved.is_file() and soundfile.info(str(saved)).samplerate == 8000
    assert "vm-msgsaved" in phone.streams()
    assert not list(saved.parent.glob(".busy.wav.tmp-*"))
