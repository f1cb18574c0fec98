"""Real Dovecot + Pigeonhole, delivering over LMTP, with mailcall's scripts and bridge."""

from __future__ import annotations

import email
import email.policy
import logging
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcall.core.decisions.absence_text import auto_reply_text
from mailcall.deposit.seal import DEPOSIT_WINDOW, _v1, deposit_key, deposit_token, key_path
from tests.sieve.support import (
    EVENING,
    OFFICE_HOURS,
    build_rig,
    close_rig,
    deposit,
    message,
    policy_text,
    wait_for,
)
from tests.support import REPO
from tests.support.dovecot import MAIL_UID, free_port

pytestmark = pytest.mark.dovecot

ALICE = "alice@stockinox.example"
CAROLE = "carole@stockinox.example"
EMMA = "emma@stockinox.example"
ALICE_SMS = "+33612345678@sms.stockinox.example"
MAILCALL = "mailcall@stockinox.example"


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


TRACE = re.compile(rb"\A(?:(?:Return-Path|Delivered-To|Received):[^\n]*\n(?:[ \t][^\n]*\n)*)+")


def folders(rig, address: str = ALICE) -> dict[str, list[bytes]]:
    """Each folder's messages as sent (without the trace headers Dovecot adds on top)."""
    return {box: [TRACE.sub(b"", m.replace(b"\r\n", b"\n"))
                  for m in rig.dovecot.fetch_all(address, box)]
            for box in ("INBOX", "Voicemail", "Fax", "Quarantine")}


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def test_proven_deposits_are_filed_once(rig):
    voice, fax = deposit(rig), deposit(rig, "fax")
    for msg in (voice, fax, voice):  # the voicemail twice: a resend after a crash
        assert rig.deliver(ALICE, msg, sender=MAILCALL) == {}
    boxes = folders(rig)
    assert [len(boxes[b]) for b in ("INBOX", "Voicemail", "Fax", "Quarantine")] == [0, 1, 1, 0]
    assert parse(boxes["Voicemail"][0])["Message-ID"] == parse(voice)["Message-ID"]
    rig.drain()
    assert rig.smtp.messages == []  # the depositor notifies voicemail, not Sieve


def test_a_forged_deposit_first_cannot_make_the_real_one_disappear(rig, caplog):
    """The attack of the issue: mailcall's envelope sender, the real voicemail's very
    Message-ID (as if guessed) and a made-up token, delivered first. Answered 250, set aside;
    the real voicemail that follows is filed, and its resend still dropped as a duplicate."""
    real = deposit(rig)
    real_id = parse(real)["Message-ID"]
    forged = re.sub(rb"Mailcall-Deposit: v2\.\S+", b"Mailcall-Deposit: v2.1." + b"A" * 43, real)
    bare = re.sub(rb"Mailcall-Deposit: [^\r]*\r\n", b"", real)  # no token at all
    assert forged != real and bare != real and b"Mailcall-Deposit" not in bare
    with caplog.at_level(logging.WARNING, logger="mailcall.sieve.mail_decision"):
        assert rig.deliver(ALICE, forged, sender=MAILCALL) == {}
        assert rig.deliver(ALICE, bare, sender=MAILCALL) == {}
        assert rig.deliver(ALICE, real, sender=MAILCALL) == {}
        assert rig.deliver(ALICE, real, sender=MAILCALL) == {}
    boxes = folders(rig)
    assert [len(boxes[b]) for b in ("INBOX", "Voicemail", "Fax", "Quarantine")] == [0, 1, 0, 2]
    assert boxes["Voicemail"][0] == _stored(real)
    assert {parse(m)["Message-ID"] for m in boxes["Quarantine"]} == {real_id}
    refused = [r.getMessage() for r in caplog.records
               if "claims to be a mailcall deposit" in r.getMessage()]
    assert len(refused) == 2 and all(real_id in m for m in refused)
    assert "is not the one mailcall wrote" in refused[0]
    assert "carries no Mailcall-Deposit token" in refused[1]


def _stored(raw: bytes) -> bytes:
    return raw.replace(b"\r\n", b"\n")


def _resealed(raw: bytes, token: str) -> bytes:
    return re.sub(rb"Mailcall-Deposit: \S+", b"Mailcall-Deposit: " + token.encode(), raw)


def _other_body(raw: bytes) -> bytes:
    head, _, _ = raw.partition(b"\r\n\r\n")
    return head + b"\r\n\r\nRappelez-moi au +1 900 555 0100.\r\n"


def test_a_replayed_copy_of_a_genuine_voicemail_is_never_filed_as_voicemail(rig, caplog):
    """The raw bytes of a real voicemail leaked (forwarded as an attachment): replayed with
    another body, it is dropped as a duplicate while Dovecot remembers its Message-ID, and
    after that window its token is too old: Quarantine. A v1 token (no time) is refused."""
    genuine = deposit(rig)
    msg = parse(genuine)
    mid, key = msg["Message-ID"], deposit_key(rig.runtime.setting("spool_dir"))
    assert re.match(r"v2\.\d{10}\.", msg["Mailcall-Deposit"])
    assert rig.deliver(ALICE, genuine, sender=MAILCALL) == {}
    within = _other_body(genuine)  # same token, another body, inside the window
    # After the window (as if a day had gone by): the same token, only made earlier.
    expired = _resealed(_other_body(genuine), deposit_token(
        key, mid, ALICE, "voice-message", at=time.time() - DEPOSIT_WINDOW - 60))
    old_form = _resealed(_other_body(genuine), _v1(key, mid, ALICE, "voice-message"))
    with caplog.at_level(logging.WARNING, logger="mailcall.sieve.mail_decision"):
        for replay in (within, expired, old_form):
            assert rig.deliver(ALICE, replay, sender=MAILCALL) == {}
    boxes = folders(rig)
    assert boxes["Voicemail"] == [_stored(genuine)]
    assert sorted(boxes["Quarantine"]) == sorted([_stored(expired), _stored(old_form)])
    assert boxes["INBOX"] == []
    refused = [r.getMessage() for r in caplog.records
               if "claims to be a mailcall deposit" in r.getMessage()]
    assert len(refused) == 2
    assert "more than the 86400 s" in refused[0] and "old form v1" in refused[1]


def test_a_second_message_context_cannot_file_a_fax_as_voicemail(rig):
    """Filed by the Message-Context the bridge checked (the first), not by any copy."""
    fax = deposit(rig, "fax")
    added_after = fax.replace(b"Message-Context: fax-message\r\n",
                              b"Message-Context: fax-message\r\nMessage-Context: voice-message\r\n")
    assert added_after != fax
    assert rig.deliver(ALICE, added_after, sender=MAILCALL) == {}
    fax2 = deposit(rig, "fax", call_id="1795887901.77")
    before2 = fax2.replace(b"Message-Context: fax-message\r\n",
                           b"Message-Context: voice-message\r\nMessage-Context: fax-message\r\n")
    assert rig.deliver(ALICE, before2, sender=MAILCALL) == {}
    boxes = folders(rig)
    assert boxes["Voicemail"] == []
    assert boxes["Fax"] == [_stored(added_after)]
    assert boxes["Quarantine"] == [_stored(before2)]  # the first one is not what it was sealed for


def test_outside_mail_is_never_filed_as_voicemail_or_fax(rig):
    """A Message-Context that merely contains the word, a forged or another user's token,
    another key: none reaches Voicemail or Fax."""
    genuine_for_carole = deposit(rig, mailbox="carole", call_id="1795887901.40")
    other_key = deposit(rig, call_id="1795887901.41", key=bytes(32))
    outside = [
        ("INBOX", message(to=ALICE, extra="Message-Context: x-not-a-voice-message-really")),
        ("INBOX", message(to=ALICE, extra="Message-Context: fax-message-or-not")),
        ("INBOX", message(to=ALICE, extra="Message-Context: voice-message")),  # another system's
        ("Quarantine", message(to=ALICE, extra="Message-Context: voice-message\r\n"
                               "Mailcall-Deposit: v1." + "x" * 43)),
        ("Quarantine", message(to=ALICE, extra="Message-Context: fax-message\r\n"
                               "Mailcall-Deposit: v1." + "x" * 43)),
        ("Quarantine", genuine_for_carole),  # replayed to alice: bound to carole
        ("Quarantine", other_key),
    ]
    for _, msg in outside:
        assert rig.deliver(ALICE, msg) == {}
    boxes = folders(rig)
    assert boxes["Voicemail"] == [] and boxes["Fax"] == []
    for box in ("INBOX", "Quarantine"):
        expected = sorted(_stored(m) for b, m in outside if b == box)
        assert sorted(boxes[box]) == expected, box


def test_a_first_deposit_to_a_user_without_a_home_is_filed_and_deduplicated(rig):
    """Dovecot's duplicate database lives in the home: on the very first delivery it logs
    the error docs/dovecot.md quotes, and the deposit is still filed and recorded."""
    home = rig.dovecot.root / "home" / "alice"
    shutil.rmtree(home)
    os.chown(home.parent, MAIL_UID, MAIL_UID)  # like /var/vmail: the mail user creates homes
    voice = deposit(rig)
    assert rig.deliver(ALICE, voice, sender=MAILCALL) == {}
    assert rig.deliver(ALICE, voice, sender=MAILCALL) == {}
    boxes = folders(rig)
    assert [len(boxes[b]) for b in ("INBOX", "Voicemail", "Quarantine")] == [0, 1, 0]
    log = rig.dovecot.log_text()
    for fragment in documented("duplicate db: transaction"):
        assert re.search(_pattern(fragment, rig), log), (fragment, log[-2000:])
    quoted = DOCS.split("Dovecot logs once, at error level:", 1)[1].split("\n\n")[1].strip()
    assert re.search(_pattern(quoted.split("Error: ", 1)[1], rig), log), log[-2000:]


def test_absent_user_never_answers_mailcall_but_still_answers_people(rig):
    rig.set_clock(datetime.now(UTC))
    notice = message(to=EMMA, subject="Nouveau message", sender=f"mailcall <{MAILCALL}>")
    assert rig.deliver(EMMA, notice, sender=MAILCALL) == {}  # a notice without Auto-Submitted
    assert rig.deliver(EMMA, deposit(rig, mailbox="emma"), sender=MAILCALL) == {}
    robot = message(to=EMMA, sender="Robot <robot@example.net>",
                    extra="Auto-Submitted: auto-generated")
    assert rig.deliver(EMMA, robot, sender="robot@example.net") == {}
    # A forged deposit from outside: Quarantine, and no reply (it would tell the forger
    # that the user is away and confirm the address).
    forged = message(to=EMMA, sender="Eve <eve@example.net>",
                     extra="Message-Context: voice-message\r\nMailcall-Deposit: v2.1." + "x" * 43)
    assert rig.deliver(EMMA, forged, sender="eve@example.net") == {}
    # Real mail under a forged From: mailcall header: bob still gets his reply.
    forged_from = message(to=EMMA, sender=f"mailcall <{MAILCALL}>")
    assert rig.deliver(EMMA, forged_from, sender="bob@example.net") == {}
    replies = wait_for(lambda: rig.smtp.to("bob@example.net"))
    time.sleep(0.5)  # any other reply would have arrived by now
    assert len(replies) == 1
    assert [m.rcpt_to for m in rig.smtp.messages] == [["bob@example.net"]]
    assert len(rig.dovecot.fetch_all(EMMA, "Voicemail")) == 1
    assert len(rig.dovecot.fetch_all(EMMA, "Quarantine")) == 1


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


def test_mailcall_stopped_mail_still_delivered_and_logged_as_documented(rig):
    rig.stop_mailcall()
    assert not rig.socket.exists()
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    assert len(rig.dovecot.fetch_all(ALICE)) == 1
    fragments = documented("daemon not reachable")
    assert len(fragments) == 2
    wait_for(lambda: "Terminated with non-zero exit code 1" in rig.dovecot.log_text())
    log = rig.dovecot.log_text()
    for fragment in fragments:
        assert re.search(_pattern(fragment, rig), log), (fragment, log[-3000:])
    # A deposit claim arriving meanwhile is not proven: kept aside, not lost.
    assert rig.deliver(ALICE, deposit(rig), sender=MAILCALL) == {}
    assert len(rig.dovecot.fetch_all(ALICE, "Quarantine")) == 1
    for fragment in documented("with no mailcall line"):
        assert re.search(_pattern(fragment, rig), rig.dovecot.log_text())


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
    fragments = documented("Connection refused")
    assert len(fragments) == 2
    for fragment in fragments:
        assert re.search(_pattern(fragment, rig), log), (fragment, log[-2000:])


def test_other_troubleshooting_lines_are_what_dovecot_logs(rig):
    """Socket not openable, no program at all, a script edited by hand: each documented
    line appears, and the mail is delivered each time."""
    import socket as socketlib

    rig.stop_mailcall()
    listener = socketlib.socket(socketlib.AF_UNIX)
    listener.bind(str(rig.socket))
    listener.listen(4)
    rig.socket.chmod(0o600)  # root's alone: the mail user may not open it
    try:
        assert rig.deliver(ALICE, message(to=ALICE)) == {}
    finally:
        listener.close()
        rig.socket.unlink()
    (rig.bin_dir / "mailcall").rename(rig.bin_dir / "away")
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    (rig.bin_dir / "away").rename(rig.bin_dir / "mailcall")
    script = rig.scripts / "mailcall.sieve"
    script.write_text(script.read_text() + "# edited by hand\n")
    assert rig.deliver(ALICE, message(to=ALICE)) == {}
    assert len(rig.dovecot.fetch_all(ALICE)) == 3
    log = rig.dovecot.log_text()
    for key in ("Permission denied", "not found", "pre-compiled"):
        for fragment in documented(key):
            assert re.search(_pattern(fragment, rig), log), (key, fragment, log[-3000:])


def test_a_forged_deposit_is_logged_as_documented(rig, caplog):
    forged = message(to=ALICE, extra="Message-Context: voice-message\r\n"
                     "Mailcall-Deposit: v1." + "x" * 43)
    with caplog.at_level(logging.WARNING, logger="mailcall.sieve.mail_decision"):
        assert rig.deliver(ALICE, forged) == {}
    dovecot_line, mailcall_line = documented("claims to be a mailcall deposit")
    assert re.search(_pattern(dovecot_line, rig), rig.dovecot.log_text())
    assert re.search(_pattern(mailcall_line, rig), caplog.text), caplog.text


def test_an_unsafe_deposit_key_stops_serve_with_the_documented_words(tmp_path):
    """`mailcall serve` itself, as the unit runs it: the deposit key readable by others."""
    spool = tmp_path / "spool"
    deposit_key(spool)
    key_path(spool).chmod(0o644)
    sock_dir = tmp_path / "sieve-execute"
    sock_dir.mkdir()
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text(socket=sock_dir / "mailcall", smtp_port=25,
                                  file_path=tmp_path / "n.jsonl", spool=spool))
    port = free_port()
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "mailcall"), "serve", "--policy", str(policy),
         "--agi-listen", f"127.0.0.1:{port}", "--spool-dir", str(spool)],
        capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr
    fragment = documented("deposit key")[0]
    assert re.search(_pattern(fragment, None, spool=spool), done.stderr), done.stderr
    assert key_path(spool).read_text().strip() not in done.stderr


def test_install_steps_2_and_7_give_the_documented_log_lines(dovecot_factory, caplog):
    """docs/dovecot.md step 2's policy block, used as written (paths of this test's
    Dovecot), and step 7's command: the two lines the page says to expect appear."""
    rig = build_rig(dovecot_factory, text=step_2_policy)
    try:
        policy = rig.runtime.policy
        assert policy.delivery.method == "lmtp"
        assert policy.channels.relay == f"127.0.0.1:{rig.smtp.port}"
        rig.start_mailcall()
        command = step_7_command().format(conf=rig.dovecot.conf)
        with caplog.at_level(logging.INFO, logger="mailcall"):
            done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True,
                                  timeout=60, check=False)
            assert done.returncode == 0, done.stderr + rig.dovecot.log_text()[-2000:]
            rig.drain()
            wait_for(lambda: "notified alice" in caplog.text)
        expected_mailcall, expected_dovecot = step_7_lines()
        assert re.search(_pattern(expected_mailcall, rig), caplog.text), caplog.text
        assert re.search(_pattern(expected_dovecot, rig), rig.dovecot.log_text())
        sms = rig.smtp.to("+33612345678@sms.example.net")
        assert len(sms) == 1 and sms[0].mail_from == MAILCALL
    finally:
        close_rig(rig)


# -- what docs/dovecot.md says ------------------------------------------------------------

DOCS = (REPO / "docs" / "dovecot.md").read_text()


def documented(key: str) -> list[str]:
    """The code spans of the first cell of the Troubleshooting row that contains `key`."""
    table = DOCS.split("## Troubleshooting", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| ") and key in line]
    assert len(rows) == 1, (key, rows)
    cell = rows[0].split(" | ")[0]
    return [a or b for a, b in re.findall(r"``(.+?)``|`([^`]+)`", cell)]


def _pattern(text: str, rig, *, spool: Path | None = None) -> str:
    """A documented line as a regex for this test's system: its paths and addresses, and
    "..." for what varies."""
    local = {
        "/run/dovecot/sieve-execute/mailcall": str(rig.socket) if rig else None,
        "/usr/local/lib/mailcall/sieve-bin/mailcall": str(rig.bin_dir / "mailcall") if rig
        else None,
        "/var/lib/mailcall/sieve/mailcall.sieve": str(rig.scripts / "mailcall.sieve") if rig
        else None,
        "/var/spool/mailcall/deposit.key": str(key_path(spool)) if spool else None,
        "/var/vmail/alice": str(rig.dovecot.root / "home" / "alice") if rig else None,
        "127.0.0.1:25": f"127.0.0.1:{rig.smtp.port}" if rig else None,
        "example.org": "stockinox.example",
    }
    parts = re.split(r"(\.\.\.|" + "|".join(re.escape(k) for k in local) + ")", text)
    out = []
    for part in parts:
        if part == "...":
            out.append(".*?")
        elif part in local:
            out.append(re.escape(local[part]) if local[part] else ".*?")
        else:
            out.append(re.escape(part))
    return "".join(out)


def _step(n: int) -> str:
    install = DOCS.split("## Install on Debian bookworm", 1)[1].split("\n## ", 1)[0]
    return install.split(f"\n{n}. ", 1)[1].split(f"\n{n + 1}. ", 1)[0]


def step_2_policy(*, socket: Path, smtp_port: int, file_path: Path, lmtp: str,
                  **kw) -> str:
    """The test policy with its [server], [delivery] and [channels] replaced by step 2's."""
    block = _step(2).split("```toml\n", 1)[1].split("```", 1)[0]
    block = "\n".join(line.strip() for line in block.splitlines())
    block = (block.replace("/run/dovecot/sieve-execute/mailcall", str(socket))
             .replace("unix:/run/dovecot/mailcall-lmtp", lmtp)
             .replace("127.0.0.1:25", f"127.0.0.1:{smtp_port}")
             .replace("/var/log/mailcall/notifications.jsonl", str(file_path)))
    block = block.replace("[server]\n", f'[server]\nspool_dir = "{file_path.parent}/spool"\n')
    base = policy_text(socket=socket, smtp_port=smtp_port, file_path=file_path, lmtp=lmtp, **kw)
    kept = re.split(r"(?m)^(?=\[)", base)
    kept = [part for part in kept if not part.startswith(("[server]", "[delivery]",
                                                           "[channels]"))]
    return "".join(kept) + "\n" + block + "\n"


def step_7_command() -> str:
    lines = _step(7).split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    command = " ".join(line.strip().rstrip("\\") for line in lines if "dovecot-lda" in line
                       or line.strip().startswith("printf"))
    return command.replace("example.org", "stockinox.example").replace(
        "/usr/lib/dovecot/dovecot-lda", "/usr/lib/dovecot/dovecot-lda -c {conf}")


def step_7_lines() -> tuple[str, str]:
    text = _step(7)
    mailcall = text.split("mailcall logs", 1)[1].split("\n\n", 2)[1].strip()
    dovecot = text.split("and Dovecot", 1)[1].split("\n\n", 2)[1].strip()
    return mailcall, dovecot
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
