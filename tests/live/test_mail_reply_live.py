"""A voice reply to an e-mail, by phone, on the real Asterisk, through a real SMTP relay.

Bernard mails Alice (over LMTP into the real Dovecot) and asks for answers to go
to Carole (``Reply-To``). Alice dials ``*99`` from her phone, types her PIN,
2 (her unread mail: the count, the envelope, the text read aloud), 3 then 1
(advanced, reply), skips the instructions with #, speaks (sipp sends the WAV's
audio as RTP) and ends with #. `mailcall serve` mails the recording through the
policy's ``[channels] relay``.

The relay is tests/notifications' ForwardingHandler: an SMTP server (aiosmtpd)
that hands each message it accepts to Dovecot over LMTP, as an organisation's
relay (Postfix) hands mail to its mailbox server: the reply crosses mailcall's SMTP client and a
real SMTP conversation, and is read back from Carole's INBOX over IMAP.
"""

from __future__ import annotations

from email.utils import getaddresses

import pytest

from tests.notifications.support import ForwardingHandler, Relay
from tests.phonemenu.support import menu_policy_text
from tests.support.dovecot import free_port
from tests.support.sipp import AwaitHangup, Dtmf, Pause, Speak

from .checks import SKIP_GAP_MS, agi_rx, assert_speech_length, audio, played
from .test_phone_menu import PIN, flags, menu_live_for

DOMAIN = "stockinox.example"
ORIGINAL_ID = "<devis-7@stockinox.example>"
EARLIER_ID = "<demande-3@stockinox.example>"


@pytest.fixture
def reply_live(live_factory):
    port = free_port()

    def edit(text: str) -> str:
        return menu_policy_text(text) + f'\n[channels]\nrelay = "127.0.0.1:{port}"\n'

    live = menu_live_for(live_factory, edit, start=False)
    with Relay(ForwardingHandler(live.dovecot.lmtp_port), port=port) as relay:
        live.start_mailcall()
        live.relay = relay.handler
        yield live


def test_a_voice_reply_to_an_email_reaches_the_reply_to_address_threaded(reply_live):
    live = reply_live
    raw = ("From: Bernard Petit <bernard@stockinox.example>\r\n"
           "To: alice@stockinox.example\r\n"
           "Reply-To: Carole Dubois <carole@stockinox.example>\r\n"
           "Subject: Devis tubes\r\nDate: Tue, 1 Dec 2026 09:00:00 +0100\r\n"
           f"Message-ID: {ORIGINAL_ID}\r\nIn-Reply-To: {EARLIER_ID}\r\n"
           f"References: {EARLIER_ID}\r\nContent-Language: en\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           "Hello Alice. Please confirm the order by phone.\r\n")
    refused = live.dovecot.lmtp_send("bernard@stockinox.example", ["alice@stockinox.example"],
                                     raw.encode())
    assert not refused, refused
    mark = live.ast.mark()
    steps = [*PIN,
             Dtmf("2"), Pause(12000),              # the mail: count, envelope, its text
             Dtmf("3"), Pause(800), Dtmf("1"),     # advanced, reply
             Pause(1000), Dtmf("#"), Pause(SKIP_GAP_MS),   # skip the instructions
             Speak(live.media.speech, 300), Dtmf("#"), Pause(5000),  # recorded; "sent"
             Dtmf("#"), Pause(1500), Dtmf("#"), AwaitHangup(20000)]
    caller = live.call("*99", steps, via="201", timeout=150)
    assert caller.final_code() == 200
    log = live.ast.log_since(mark)
    rx = agi_rx(log)
    assert any(line.startswith("RECORD FILE") for line in rx), rx
    assert 'SET VARIABLE MAILCALL_STATUS "MAILBOX_DONE"' in rx
    # What Alice heard: the reply said sent, never "not sent", all in her language.
    names = [f for f, _lang in played(log)]
    assert any("/phrases/reply_sent-en/" in n for n in names), names
    assert not any("/phrases/not_sent-" in n for n in names), names
    assert all(lang == "en" for _f, lang in played(log)), played(log)
    # The original, as her mail client sees it: heard to its end (\\Seen), and answered.
    assert flags(live, "INBOX") == [{"\\Seen", "\\Answered"}]

    [reply] = live.mail("carole", "INBOX")
    assert [a for _n, a in getaddresses([str(reply["To"])])] == [f"carole@{DOMAIN}"]
    assert [a for _n, a in getaddresses([str(reply["From"])])] == [f"alice@{DOMAIN}"]
    assert str(reply["Subject"]) == "Re: Devis tubes"
    assert str(reply["In-Reply-To"]) == ORIGINAL_ID
    assert str(reply["References"]).split() == [EARLIER_ID, ORIGINAL_ID]
    kind, seconds, level = audio(reply)
    assert kind == "audio/wav"
    assert_speech_length(seconds, live.media.speech_seconds())
    assert level > 0.01
    # The relay took it once, for Carole only; Bernard (From) got nothing.
    assert [r.rcpt_tos for r in live.relay.accepted] == [[f"carole@{DOMAIN}"]]
    assert live.dovecot.fetch_all(f"bernard@{DOMAIN}", "INBOX") == []
    assert not list((live.spool / "rec").glob("menu-*mailreply*"))  # sent: removed
