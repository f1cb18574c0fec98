"""Mailbox by phone on the real Asterisk and the real Dovecot, keys typed as RFC 4733 DTMF.

Alice's voicemail is left by real calls (``*97``, docs/asterisk.md §4, through
mailcall's deposit path); her e-mail arrives over LMTP. She then dials the
menu's short number from her own phone (``*99`` → ``Gosub(mailcall-mailbox,s,1)``,
docs/phone-menu.md) and types her PIN and keys with sipp. Each test checks what
Asterisk played (its log: prompts and their language, the speech and audio
files, every AGI line) and what the mailbox holds afterwards over IMAP
(flags, Trash), as her mail client would see it.
"""

from __future__ import annotations

import re

import pytest

from tests.phonemenu.support import MASTER, MASTER_PASSWORD, menu_policy_text
from tests.support.dovecot import master_passdb
from tests.support.sipp import AwaitHangup, Dtmf, Pause, Speak

from .checks import SKIP_GAP_MS, agi_rx, assert_speech_length, audio, leave_message, played

MENU_DIALPLAN = r"""
; ---- tests/live/test_phone_menu.py: docs/phone-menu.md's entries (contexts merge) ----
[from-internal]
exten => *99,1,Gosub(mailcall-mailbox,s,1)
 same => n,Hangup()

[from-trunk]
exten => +33140000290,1,Gosub(mailcall-mailbox,s,1)
 same => n,Hangup()
"""


def menu_live_for(live_factory, edit=menu_policy_text, *, start: bool = True):
    """A live instance set up for the phone menu (master user, phone-menu.toml), its
    policy written by `edit`; `mailcall serve` started unless `start` is False."""
    live = live_factory(edit=edit, dialplan=MENU_DIALPLAN,
                        dovecot_extra=lambda work: master_passdb(work, MASTER, MASTER_PASSWORD),
                        mailcall=False)
    secret = live.work / "imap-phone.secret"
    secret.write_text(MASTER_PASSWORD + "\n")
    secret.chmod(0o600)
    live.policy_path.with_name("phone-menu.toml").write_text(
        f"[mailstore]\nport = {live.dovecot.imap_port}\npassword_file = \"{secret}\"\n")
    if start:
        live.start_mailcall()
    return live


@pytest.fixture
def menu_live(live_factory):
    return menu_live_for(live_factory)


def flags(live, folder: str) -> list[set[str]]:
    conn = live.dovecot.imap("alice@stockinox.example")
    try:
        typ, _ = conn.select(f'"{folder}"', readonly=True)
        if typ != "OK":
            return []
        _typ, data = conn.fetch("1:*", "(FLAGS)")
        return [set(re.search(rb"FLAGS \(([^)]*)\)", d)[1].decode().split()) - {"\\Recent"}
                for d in data if d]
    finally:
        conn.logout()


def menu_files(log: str, what: str) -> list[str]:
    """Files Asterisk played from the call's scratch folder (speech chunks, audio)."""
    return [f for f, _lang in played(log) if "/menu/call-" in f and re.search(what, f)]


def leave_two_messages(live) -> None:
    for _ in range(2):
        caller = live.call("*97", leave_message(live.media.speech), via="201")
        assert caller.final_code() == 200
    live.mail("alice", "Voicemail", count=2)


PIN = [Pause(1500), Dtmf("2468#"), Pause(2500)]


def test_listen_to_the_end_then_save_then_delete_the_next(menu_live):
    live = menu_live
    leave_two_messages(live)
    mark = live.ast.mark()
    steps = [*PIN,
             Dtmf("1"), Pause(12000),   # listen: envelope, then the audio to its end
             Dtmf("9"), Pause(3000),    # save it ("saved" is not cut); the next envelope
             Dtmf("7"), Pause(2500),    # delete that one during its envelope
             Dtmf("#"), AwaitHangup(20000)]
    caller = live.call("*99", steps, via="201", timeout=120)
    assert caller.final_code() == 200
    log = live.ast.log_since(mark)
    rx = agi_rx(log)
    assert rx[0] == 'SET VARIABLE CHANNEL(language) "en"', rx[:3]
    assert any(line.startswith("GET DATA agent-pass") for line in rx), rx
    assert not any(line.startswith("GET DATA vm-login") for line in rx)  # her own phone
    assert 'SET VARIABLE MAILCALL_STATUS "MAILBOX_DONE"' in rx, rx
    names = [f for f, _lang in played(log)]
    assert any(n.endswith("vm-youhave.gsm") or "vm-youhave" in n for n in names), names
    audio = menu_files(log, r"/vm-\d+\.")
    assert len(audio) == 1, played(log)   # the first message's own audio
    assert menu_files(log, r"-\d{4}\.")   # speech chunks (envelopes, counts)
    assert all(lang == "en" for _f, lang in played(log))
    # the mailbox, as a mail client sees it
    assert flags(live, "Voicemail") == [{"\\Seen"}]
    assert flags(live, "Trash") == [set()]
    assert live.all_mail("alice")["Voicemail"] == 1


def test_an_email_is_read_and_marked_read(menu_live):
    live = menu_live
    body = ("<html><body><p>Bonjour Alice,</p><p>Voici le devis pour les tubes en acier. "
            "Merci de confirmer avant vendredi.</p><p>Cordialement,<br>Jean</p></body></html>")
    raw = ("From: Jean Dupont <jean@example.org>\r\nTo: alice@stockinox.example\r\n"
           "Subject: Devis tubes\r\nDate: Tue, 1 Dec 2026 09:00:00 +0100\r\n"
           "Message-ID: <devis-1@example.org>\r\nContent-Language: fr\r\n"
           "MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + body)
    refused = live.dovecot.lmtp_send("jean@example.org", ["alice@stockinox.example"],
                                     raw.encode())
    assert not refused, refused
    mark = live.ast.mark()
    steps = [*PIN, Dtmf("2"), Pause(25000), Dtmf("#"), Pause(1500), Dtmf("#"),
             AwaitHangup(20000)]
    caller = live.call("*99", steps, via="201", timeout=120)
    assert caller.final_code() == 200
    log = live.ast.log_since(mark)
    chunks = menu_files(log, r"-\d{4}\.")
    assert len(chunks) >= 4, played(log)  # count, envelope, then the body sentence by sentence
    assert flags(live, "INBOX") == [{"\\Seen"}]
    assert 'SET VARIABLE MAILCALL_STATUS "MAILBOX_DONE"' in agi_rx(log)


def voicemail_from(live, colleague: str, name: str) -> None:
    """A colleague calls Alice from a phone without a fixed caller ID and leaves a message
    (Alice's phone and her backup's answer busy: straight to her voicemail)."""
    live.phone("201", "busy")
    live.phone("202", "busy")
    caller = live.call("201", leave_message(live.media.speech), via="guest",
                       from_user=colleague, from_name=name)
    assert caller.final_code() == 200
    live.mail("alice", "Voicemail")


def test_reply_to_a_colleague_and_forward_to_another(menu_live):
    """Carole left Alice a message; Alice replies by voice (it lands in Carole's
    Voicemail) and forwards Carole's message to Emma (extension 205)."""
    live = menu_live
    voicemail_from(live, "203", "Carole Dubois")
    mark = live.ast.mark()
    steps = [*PIN,
             Dtmf("1"), Pause(12000),              # her message, to its end
             Dtmf("3"), Pause(500), Dtmf("1"),     # advanced, reply
             Pause(1000), Dtmf("#"), Pause(SKIP_GAP_MS),   # skip the instructions
             Speak(live.media.speech, 300), Dtmf("#"), Pause(3000),
             Dtmf("8"), Pause(800), Dtmf("205#"),  # forward to Emma
             Pause(800), Dtmf("2"), Pause(4000),   # without a preface
             Dtmf("#"), Pause(1500), Dtmf("#"), AwaitHangup(20000)]
    caller = live.call("*99", steps, via="201", timeout=150)
    assert caller.final_code() == 200
    log = live.ast.log_since(mark)
    rx = agi_rx(log)
    assert any(line.startswith("RECORD FILE") for line in rx), rx
    assert any(line.startswith("GET DATA vm-extension") for line in rx), rx
    [reply] = live.mail("carole", "Voicemail")
    assert "Alice Martin" in reply["Subject"]
    _kind, seconds, level = audio(reply)
    assert_speech_length(seconds, live.media.speech_seconds())
    assert level > 0.01
    [forwarded] = live.mail("emma", "Voicemail")
    assert "Carole Dubois" in forwarded["Subject"]
    assert 'SET VARIABLE MAILCALL_STATUS "MAILBOX_DONE"' in rx


def test_call_back_rings_the_colleague_then_the_menu_goes_on(menu_live):
    live = menu_live
    voicemail_from(live, "203", "Carole Dubois")
    carole = live.phone("203", "answer", hangup_after_ms=1500)
    mark = live.ast.mark()
    steps = [*PIN, Dtmf("1"), Pause(12000), Dtmf("3"), Pause(500), Dtmf("2"),
             Pause(6000), Dtmf("#"), Pause(1500), Dtmf("#"), AwaitHangup(20000)]
    caller = live.call("*99", steps, via="201", timeout=120)
    assert caller.final_code() == 200
    log = live.ast.log_since(mark)
    rx = agi_rx(log)
    assert 'EXEC Dial "PJSIP/203,5,g"' in rx, rx
    assert re.search(r"Rx << STREAM FILE vm-prev", log.split('EXEC Dial "PJSIP/203,5,g"')[1])
    assert len(carole.requests("INVITE")) == 1
    assert 'SET VARIABLE MAILCALL_STATUS "MAILBOX_DONE"' in rx
