"""Real Dovecot + Pigeonhole, delivering over LMTP, with mailcall's scripts and bridge."""

from __future__ import annotations

import email
import email.policy
import os
import re
import time
from datetime import UTC, datetime

import pytest

from mailcall.core.absence_text import auto_reply_text
from tests.sieve.support import EVENING, OFFICE_HOURS, build_rig, close_rig, message, wait_for
from tests.support.dovecot import MAIL_UID

pytestmark = pytest.mark.dovecot

ALICE = "alice@stockinox.example"
CAROLE = "carole@stockinox.example"
EMMA = "emma@stockinox.example"
ALICE_SMS = "+33612345678@sms.stockinox.example"


@pytest.fixture
def rig(dovecot_factory):
    rig = build_rig(dovecot_factory)
    rig.start_mailcall()
    yield rig
    close_rig(rig)


def sizes(dovecot, address: str, mailbox: str = "INBOX") -> list[int]:
    conn = dovecot.imap(address)
    try:
        typ, _ = conn.select(f'"{mailbox}"', readonly=True)
        if typ != "OK":
            return []
        _, data = conn.fetch("1:*", "(RFC822.SIZE)")
        return [int(re.search(rb"RFC822\.SIZE (\d+)", d).group(1)) for d in data if d]
    finally:
        conn.logout()


def test_customer_facing_user_gets_exactly_one_notification(rig):
    msg = message(to=ALICE, msgid="<order-1@example.net>")
    assert rig.deliver(ALICE, msg) == {}
    rig.drain()
    sms = wait_for(lambda: rig.smtp.to(ALICE_SMS))
    assert len(sms) == 1
    parsed = email.message_from_bytes(sms[0].data, policy=email.policy.default)
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert "Bob Client" in parsed["Subject"]
    assert "Devis inox 316L" in parsed.get_content()
    # The same mail again (an MTA retry): no second notification.
    assert rig.deliver(ALICE, msg) == {}
    rig.drain()
    assert len(rig.smtp.to(ALICE_SMS)) == 1
    outcomes = [r["outcome"] for r in rig.records() if r["user"] == "alice"]
    assert outcomes == ["sent", "duplicate"]
    assert len(rig.dovecot.fetch_all(ALICE)) == 2  # both copies delivered all the same


def test_administrative_user_gets_none(rig):
    assert rig.deliver(CAROLE, message(to=CAROLE)) == {}
    rig.drain()
    assert len(rig.dovecot.fetch_all(CAROLE)) == 1
    assert rig.records() == []
    assert rig.smtp.messages == []


def test_only_recipients_who_may_be_notified_cost_a_call(rig):
    """The script asks the bridge for alice (sales) and never for carole (office)."""
    from mailcall.core.hookspecs import hookimpl

    asked: list[str] = []

    class Audit:
        @hookimpl
        def mailcall_after_decision(self, kind, request, decision):
            asked.append(request.recipient)

    rig.runtime.pm.register(Audit())
    assert rig.deliver(CAROLE, message(to=CAROLE)) == {}
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    rig.drain()
    assert asked == [ALICE]
    assert len(rig.dovecot.fetch_all(CAROLE)) == 1
    assert len(wait_for(lambda: rig.smtp.to(ALICE_SMS))) == 1


def test_outside_allowed_hours_none(rig):
    rig.set_clock(EVENING)
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    rig.drain()
    assert rig.records() == []
    assert rig.smtp.messages == []
    rig.set_clock(OFFICE_HOURS)
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    rig.drain()
    assert len(wait_for(lambda: rig.smtp.to(ALICE_SMS))) == 1


def test_list_and_auto_submitted_mail_never_notify(rig):
    rig.deliver(ALICE, message(to=ALICE, extra="List-Id: <sales.stockinox.example>"))
    rig.deliver(ALICE, message(to=ALICE, extra="Auto-Submitted: auto-replied"))
    rig.deliver(ALICE, message(to=ALICE), sender="")
    rig.drain()
    assert rig.smtp.messages == []
    assert len(rig.dovecot.fetch_all(ALICE)) == 3


def test_voicemail_and_fax_are_filed(rig):
    voice = message(to=ALICE, subject="Message vocal de 0140000299",
                    extra="Message-Context: voice-message")
    fax = message(to=ALICE, subject="Fax", extra="Message-Context: fax-message")
    assert rig.deliver(ALICE, voice) == {}
    assert rig.deliver(ALICE, fax) == {}
    assert len(rig.dovecot.fetch_all(ALICE, "Voicemail")) == 1
    assert len(rig.dovecot.fetch_all(ALICE, "Fax")) == 1
    assert rig.dovecot.fetch_all(ALICE) == []
    rig.drain()
    assert rig.smtp.messages == []  # the depositor notifies voicemail, not Sieve


def test_absent_user_sender_gets_one_auto_reply(rig):
    # Sieve's currentdate reads Dovecot's real clock: decide at the real time too.
    rig.set_clock(datetime.now(UTC))
    # Emma's own script keeps working beside the generated one.
    own = rig.dovecot.root / "home" / "emma" / ".dovecot.sieve"
    own.write_text('require ["fileinto", "mailbox"];\nfileinto :create "Perso";\n')
    os.chown(own, MAIL_UID, MAIL_UID)
    for n in range(2):
        assert rig.deliver(EMMA, message(to=EMMA, subject=f"Question {n}")) == {}
    assert len(rig.dovecot.fetch_all(EMMA, "Perso")) == 2
    replies = wait_for(lambda: rig.smtp.to("bob@example.net"))
    time.sleep(0.5)  # a second reply, if any, would have arrived by now
    replies = rig.smtp.to("bob@example.net")
    assert len(replies) == 1
    reply = email.message_from_bytes(replies[0].data, policy=email.policy.default)
    assert reply["Auto-Submitted"].startswith("auto-replied")
    assert "Emma Laurent" in reply["Subject"]
    body = reply.get_content()
    assert "Bernard Petit <bernard@stockinox.example>" in body
    policy = rig.runtime.policy
    subject, text = auto_reply_text(policy, "emma", policy.absences["emma"][0])
    assert reply["Subject"] == subject  # the core's words: same dates and backup as the phone
    assert text.split("\n")[2] in body  # "... absent(e) jusqu'au <date> ..."
    assert 'Je suis en congé "au soleil" \\ loin.' in body
    assert rig.records() == []  # absent: no mobile notification


def test_mailcall_stopped_mail_still_delivered_and_logged(rig):
    rig.stop_mailcall()
    assert not rig.socket.exists()
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    assert len(rig.dovecot.fetch_all(ALICE)) == 1
    wait_for(lambda: "daemon not reachable" in rig.dovecot.log_text())
    log = rig.dovecot.log_text()
    assert f"mailcall: daemon not reachable at {rig.socket}" in log, log[-3000:]


def test_mailcall_crashed_socket_left_behind(rig):
    """A stale socket (kill -9): Dovecot cannot connect, says so, and delivers."""
    import socket as socketlib

    rig.stop_mailcall()
    stale = socketlib.socket(socketlib.AF_UNIX)
    stale.bind(str(rig.socket))
    stale.close()  # what a killed daemon leaves: the file, with its permissions
    os.chown(rig.socket, -1, MAIL_UID)
    rig.socket.chmod(0o660)
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    assert len(rig.dovecot.fetch_all(ALICE)) == 1
    log = rig.dovecot.log_text()
    assert f"net_connect_unix({rig.socket}) failed: Connection refused" in log, log[-2000:]
    assert "failed to execute to program `mailcall'" in log


def test_malformed_mail_is_delivered_and_handled(rig):
    no_from = message(to=ALICE, sender=None)
    eight_bit = message(to=ALICE, subject="Tarifs \u00e9t\u00e9 \u2013 r\u00e9ponse").replace(
        b"To: ", "X-Bizarre: \u00e0\u00e7\u00e9\xff\r\nTo: ".encode("latin-1", "replace"), 1)
    big = message(to=ALICE, subject="Plans", body="x" * 64 + "\n").replace(
        b"Content-Type: text/plain; charset=utf-8",
        b'Content-Type: multipart/mixed; boundary="b"') + (
        b"\r\n--b\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + (b"QUJDRA==" * 9 + b"\r\n") * (20 * 1024 * 1024 // 74) + b"--b--\r\n")
    for msg in (no_from, eight_bit, big):
        assert rig.deliver(ALICE, msg) == {}
    delivered = sizes(rig.dovecot, ALICE)
    assert len(delivered) == 3
    assert max(delivered) > 20_000_000
    rig.drain()
    outcomes = [r["outcome"] for r in rig.records()]
    assert outcomes == ["sent", "sent", "sent"]
    texts = [email.message_from_bytes(m.data, policy=email.policy.default).get_content()
             for m in rig.smtp.to(ALICE_SMS)]
    assert any("bob@example.net" in t for t in texts)  # no From: the envelope sender is named
    assert any("Tarifs" in t for t in texts)
    log = rig.dovecot.log_text()
    assert "Panic" not in log
    assert "pre-compiled" not in log  # the installed binaries are up to date
