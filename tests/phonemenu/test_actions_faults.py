"""Reply, call back and forward when things are slow, oddly filed or hostile.

Same peers as test_actions.py: the real Dovecot of support.py, a real SMTP relay
(aiosmtpd) that can be made slow or hold a transaction, the scripted caller on
the fake Asterisk. What is asserted is what the caller heard and when (the
commands' arrival times: the fake phone answers at once, so a gap between two
commands is silence on the line), what the relay took and what the spool got.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import itertools
import logging
from datetime import UTC, datetime

import pytest
import soundfile

from mailcall.agi import prompts
from mailcall.mailstore.summary import parse_headers, summarise
from mailcall.phonemenu import actions_forward, actions_reply
from mailcall.phonemenu.presenting import Presenter
from tests.agi.harness import serving
from tests.notifications.support import Relay, ScriptedHandler

from .phone import Phone, Press, run_phone
from .support import LIVE_POLICY, PIN, RECORDING, cleanup, plain_mail, start_mailboxes

AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
MENU_WAIT = r"WAIT FOR DIGIT"
LISTEN = (Press("STREAM FILE vm-onefor", key="1"), Press(AUDIO, key="#"))
MAIL_REPLY = (Press("STREAM FILE vm-onefor", key="2"), Press(MENU_WAIT, key="3"),
              Press(MENU_WAIT, key="1"))
INBOX_ACTION = (Press("STREAM FILE vm-onefor", key="2"), Press(MENU_WAIT, key="3"))
ONE_MOMENT = "one-moment-please"
MESSAGE_MENU = prompts.MENU_PHRASES["message_menu"]


class SlowHandler(ScriptedHandler):
    """A relay that takes `delay` seconds before answering DATA (then answers as usual)."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server, session, envelope) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay():
    handler = SlowHandler(0.0)
    with Relay(handler) as r:
        yield r
        handler.release()  # a held transaction must not keep the relay's thread 30 s


@pytest.fixture
def boxes(dovecot_factory, relay):
    text = LIVE_POLICY.read_text() + f'\n[channels]\nrelay = "{relay.address}"\n'
    made = start_mailboxes(dovecot_factory, text)
    yield made
    cleanup(made)


def run(boxes, phone: Phone, timeout: float = 20.0) -> Phone:
    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address, timeout=timeout)
    return asyncio.run(go())


def call(boxes, *rules: Press) -> Phone:
    return run(boxes, Phone([Press("GET DATA agent-pass", digits=PIN), *rules]))


def times(phone: Phone, pattern: str) -> list[float]:
    return [at for at, line in phone.sent_at if pattern in line]


def longest_silence_after(phone: Phone, start: float) -> float:
    """The longest gap between two commands from `start` on (the phone answers at once)."""
    at = [t for t, _ in phone.sent_at if t >= start]
    return max((b - a for a, b in itertools.pairwise(at)), default=0.0)


def to_inbox(boxes, user: str) -> None:
    """Move every voicemail to the INBOX, as a user does with their mail client."""
    conn = boxes.dovecot.imap(boxes.email(user))
    try:
        typ, _ = conn.select('"Voicemail"')
        assert typ == "OK"
        typ, data = conn.uid("MOVE", "1:*", "INBOX")
        assert typ == "OK", data
    finally:
        conn.logout()


# ------------------------------------------------------------- slow relay (defect 1)


def test_a_slow_relay_gets_one_moment_said_and_the_reply_is_sent(boxes, relay):
    relay.handler.delay = 3.5
    boxes.mail("alice", plain_mail("Devis", "Rappelez-moi", sender="Jean <jean@example.org>"))
    phone = call(boxes, *MAIL_REPLY)
    assert not phone.missing, phone.missing
    [recorded] = times(phone, "RECORD FILE")
    moments = times(phone, ONE_MOMENT)
    assert moments and moments[0] - recorded < 2.0, (recorded, moments)
    assert longest_silence_after(phone, recorded) < 3.0
    [received] = relay.handler.accepted
    assert received.rcpt_tos == ["jean@example.org"]
    assert phone.streams(r"/phrases/reply_sent-en/")
    assert not list((boxes.spool / "rec").glob("menu-*mailreply*"))  # sent: not kept


def test_a_relay_that_does_not_answer_is_given_up_and_the_caller_told(boxes, relay,
                                                                      monkeypatch, caplog):
    monkeypatch.setattr(actions_reply, "RELAY_WAIT_S", 4.0, raising=False)  # before: 25 s
    relay.handler.hold = True  # DATA waits; then 451: the relay never takes it
    boxes.mail("alice", plain_mail("Devis", "Rappelez-moi", sender="Jean <jean@example.org>"))
    with caplog.at_level(logging.ERROR, logger="mailcall.phonemenu"):
        phone = call(boxes, *MAIL_REPLY)
    assert relay.handler.held.is_set()
    relay.handler.release()
    [recorded] = times(phone, "RECORD FILE")
    [told] = times(phone, "/phrases/not_sent-en/")
    assert 4.0 <= told - recorded < 5.0, told - recorded
    assert times(phone, ONE_MOMENT)[0] - recorded < 2.0
    assert longest_silence_after(phone, recorded) < 3.0
    assert not phone.streams(r"/phrases/reply_sent-en/")
    assert relay.handler.accepted == []
    [kept] = (boxes.spool / "rec").glob("menu-*mailreply*.wav")
    assert any("not sent" in r.getMessage() and str(kept) in r.getMessage()
               and "[channels] relay" in r.getMessage() for r in caplog.records)


# ------------------------------------------------- deposits in the INBOX (defect 2)


def test_reply_to_a_colleagues_voicemail_in_the_inbox_goes_to_the_colleague(boxes, relay):
    boxes.voicemail("alice", "c1", caller="202", name="Bernard")
    to_inbox(boxes, "alice")
    phone = call(boxes, *INBOX_ACTION, Press(MENU_WAIT, key="1"))
    assert not phone.missing, phone.missing
    assert relay.handler.accepted == []  # never mailed to mailcall's own sender
    [message] = boxes.depositor.messages
    assert message.mailbox == "bernard" and message.caller_number == "201"
    assert phone.streams(r"/phrases/reply_sent-en/")


def test_call_back_on_a_voicemail_in_the_inbox_dials_the_caller(boxes):
    boxes.voicemail("alice", "c1", caller="+33612345678")
    to_inbox(boxes, "alice")
    phone = call(boxes, *INBOX_ACTION, Press(MENU_WAIT, key="2"))
    assert [c for c in phone.commands if c.startswith("EXEC")] == [
        'EXEC Dial "PJSIP/+33612345678@trunk,5,g"\n']


def test_call_back_on_a_mail_dials_nothing(boxes):
    boxes.mail("alice", plain_mail("Rappel", "Mon numéro : 0612345678"))
    phone = call(boxes, *INBOX_ACTION, Press(MENU_WAIT, key="2"))
    assert not any(c.startswith("EXEC") for c in phone.commands)
    assert "vm-nonumber" in phone.streams()


# ----------------------------------------------------------------- Reply-To (defect 3)


def _summary(reply_to_lines: bytes):
    block = (b"From: Jean <jean@example.org>\r\n" + reply_to_lines
             + b"Subject: x\r\nMessage-ID: <m1@example.org>\r\n\r\n")
    when = datetime(2026, 12, 1, tzinfo=UTC)
    return summarise(uid=1, folder="INBOX", uidvalidity=1, flags=(), received=when,
                     size=len(block), headers=parse_headers(block), key=None,
                     recipient="alice@stockinox.example")


@pytest.mark.parametrize(("line", "expected"), [
    (b"Reply-To: Devis <devis@example.org>\r\n", "devis@example.org"),
    (b"Reply-To: Service Devis\r\n <devis@example.org>\r\n", "devis@example.org"),  # folded
    (b"", ""),
    (b"Reply-To: a@example.org, b@example.org\r\n", ""),
    (b"Reply-To: list: a@example.org, b@example.org;\r\n", ""),
    (b"Reply-To: not an address\r\n", ""),
    (b"Reply-To: <a@example.org> Bcc: evil@example.net\r\n", ""),
    (b"Reply-To: =?utf-8?q?x=0D=0ABcc:_evil@example.net?= <a@example.org>\r\n", ""),
    (b"Reply-To: a@example.org\r\nReply-To: b@example.org\r\n", ""),
    (b"Reply-To: \"a\\\"@x\" <a@example.org>\r\n", "a@example.org"),
    (b"Reply-To: evil\x00@example.org\r\n", ""),
    (b"Reply-To: j\xc3\xa9@example.org\r\n", ""),
])
def test_reply_to_keeps_only_one_plain_address(line, expected):
    summary = _summary(line)
    assert summary.reply_to == expected
    assert summary.sender_address == "jean@example.org"


def test_a_reply_goes_to_the_reply_to_address(boxes, relay):
    mail = plain_mail("Devis", "Pouvez-vous me rappeler ?", sender="Jean <jean@example.org>")
    mail["Reply-To"] = "Service devis <devis@example.org>"
    boxes.mail("alice", mail)
    phone = call(boxes, *MAIL_REPLY)
    assert not phone.missing, phone.missing
    [received] = relay.handler.accepted
    assert received.rcpt_tos == ["devis@example.org"]
    sent = email.message_from_bytes(received.data, policy=email.policy.default)
    assert [a.addr_spec for a in sent["To"].addresses] == ["devis@example.org"]
    assert phone.streams(r"/phrases/reply_sent-en/")


def test_a_hostile_reply_to_falls_back_to_the_sender_and_adds_no_header(boxes, relay):
    mail = plain_mail("Devis", "Pouvez-vous me rappeler ?", sender="Jean <jean@example.org>")
    raw = mail.as_bytes().replace(
        b"Subject: Devis",
        b"Reply-To: =?utf-8?q?x=0D=0ABcc:_evil@example.net?= <a@example.org>,"
        b" evil@example.net\nSubject: Devis", 1)
    refused = boxes.dovecot.lmtp_send("sender@example.org", [boxes.email("alice")], raw)
    assert not refused, refused
    phone = call(boxes, *MAIL_REPLY)
    assert not phone.missing, phone.missing
    [received] = relay.handler.accepted
    assert received.rcpt_tos == ["jean@example.org"]
    sent = email.message_from_bytes(received.data, policy=email.policy.default)
    assert sent["Bcc"] is None and sent["Reply-To"] is None
    assert b"evil@example.net" not in received.data
    assert [a.addr_spec for a in sent["To"].addresses] == ["jean@example.org"]


# ----------------------------------------------------------------- forward (defect 4)


def slow_audio_after(phone: Phone, monkeypatch, marker: str, delay: float) -> None:
    """From when the phone was asked `marker` on, the message's audio takes `delay` s more
    (the real fetch and decode still run: only the wait is longer)."""
    real = Presenter.audio_of

    def audio_of(self, message):
        inner = real(self, message)
        if not any(marker in line for _, line in phone.sent_at):
            return inner

        async def later():
            await asyncio.sleep(delay)
            return await inner
        return asyncio.ensure_future(later())

    monkeypatch.setattr(Presenter, "audio_of", audio_of)


def test_a_key_during_one_moment_of_a_forward_does_not_lose_it(boxes, monkeypatch):
    boxes.voicemail("alice", "c1", caller="+33612345678", name="Client")
    phone = Phone([Press("GET DATA agent-pass", digits=PIN), *LISTEN, Press(MENU_WAIT, key="8"),
                   Press("GET DATA vm-extension", digits="205"),
                   Press("GET DATA vm-forwardoptions", digits="1"),
                   Press(f"STREAM FILE {ONE_MOMENT}", key="5")])
    slow_audio_after(phone, monkeypatch, "vm-forwardoptions", 1.6)
    run(boxes, phone)
    assert not phone.missing, phone.missing
    assert not phone.rules, phone.rules  # the caller did press during "one moment"
    [message] = boxes.depositor.messages
    assert message.mailbox == "emma"
    recording = soundfile.info(str(RECORDING)).duration
    assert abs(message.duration_ms / 1000 - 2 * recording) < 0.1, message.duration_ms
    assert not list((boxes.spool / "rec").glob("menu-*preface*"))
    # The key only cut "one moment please" (waiting()): the forward's outcome is said,
    # then the message menu. It is not a menu command kept for later: under the old
    # mailbox.slow() wait, this 5 came back as "repeat" and replayed the message.
    streams = phone.streams()
    assert streams.count("vm-msgforwarded") == 1
    assert len(phone.streams(r"/call-[^/]*/vm-\d+$")) == 1, streams  # heard once, at 1
    after = streams[streams.index("vm-msgforwarded") + 1:]
    assert after[:len(MESSAGE_MENU)] == list(MESSAGE_MENU), after


def test_a_hang_up_during_one_moment_of_a_forward_still_forwards_without_leftovers(
        boxes, monkeypatch):
    # The caller chose the colleague and recorded the preface: hanging up while the
    # message is fetched is like hanging up after a voicemail, the forward is made.
    # The hang-up cuts "one moment please" as Asterisk reports it (result=-1 with an
    # endpos, the dtmf trace): the session knows at once. The old wait re-raised it,
    # forwarded nothing and left the preface in rec/.
    boxes.voicemail("alice", "c1", caller="+33612345678", name="Client")
    phone = Phone([Press("GET DATA agent-pass", digits=PIN), *LISTEN, Press(MENU_WAIT, key="8"),
                   Press("GET DATA vm-extension", digits="205"),
                   Press("GET DATA vm-forwardoptions", digits="1"),
                   Press(f"STREAM FILE {ONE_MOMENT}", hangup=True, cut=True)])
    slow_audio_after(phone, monkeypatch, "vm-forwardoptions", 1.6)
    run(boxes, phone)
    assert not phone.rules, phone.rules
    assert len(times(phone, ONE_MOMENT)) == 1  # not said again to a channel that is gone
    assert len(phone.recorded_to) == 1 and "preface" in phone.recorded_to[0]
    [message] = boxes.depositor.messages
    assert message.mailbox == "emma"
    recording = soundfile.info(str(RECORDING)).duration
    assert abs(message.duration_ms / 1000 - 2 * recording) < 0.1, message.duration_ms
    assert not list((boxes.spool / "rec").glob("menu-*preface*"))


def test_silence_at_the_forward_options_asks_again(boxes):
    boxes.voicemail("alice", "c1", caller="+33612345678", name="Client")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="8"),
                 Press("GET DATA vm-extension", digits="205"),
                 Press("GET DATA vm-forwardoptions"),  # nothing typed: times out
                 Press("GET DATA vm-forwardoptions", digits="2"))
    assert not phone.rules, phone.rules
    assert phone.streams().count("vm-forwardoptions") == 2
    assert phone.recorded_to == []  # "2": no preface
    [message] = boxes.depositor.messages
    recording = soundfile.info(str(RECORDING)).duration
    assert abs(message.duration_ms / 1000 - recording) < 0.1, message.duration_ms


def test_silence_every_time_at_the_forward_options_forwards_nothing(boxes):
    boxes.voicemail("alice", "c1", caller="+33612345678", name="Client")
    phone = call(boxes, *LISTEN, Press(MENU_WAIT, key="8"),
                 Press("GET DATA vm-extension", digits="205"),
                 *(Press("GET DATA vm-forwardoptions")
                   for _ in range(actions_forward.FORWARD_TRIES)))
    assert not phone.rules, phone.rules
    assert phone.streams().count("vm-forwardoptions") == actions_forward.FORWARD_TRIES
    assert boxes.depositor.messages == []
    assert phone.streams(r"/phrases/not_sent-en/")
