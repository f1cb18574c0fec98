"""A vacation set in the mail client (over ManageSieve, as Roundcube does) and an absence set
in mailcall's user store, against a real Dovecot 2.3 + Pigeonhole with a ManageSieve listener.

mailcall runs for real (the user-store service and the per-user auto-reply scripts it
rewrites and compiles); the user's own script is uploaded and activated with the real
ManageSieve protocol (mailcall.sieve.managesieve_session); replies are counted at the capture
SMTP server Dovecot sends vacation replies to (``submission_host``).
"""

from __future__ import annotations

import email
import email.policy
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailcall.plugins import userstore as userstore_plugin
from mailcall.sieve.client_scripts import read_client_vacation
from mailcall.sieve.client_vacation import who_answers
from mailcall.sieve.generate import USERS_DIR
from mailcall.sieve.managesieve_session import ManageSieveError, Session
from mailcall.userstore.overlay import decision_policy
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.sieve.support import PARIS, build_rig, close_rig, message, wait_for
from tests.support import REPO
from tests.support.dovecot import DOVEADM, PASSWORD, free_port

pytestmark = pytest.mark.dovecot

ALICE = "alice@stockinox.example"
BOB = "bob@example.net"
CLIENT_TEXT = "Absente jusqu'au 20, écrivez à support@stockinox.example (Roundcube)."
STORE_TEXT = "Au salon Inox Expo"


def roundcube_script(*, fileinto: str | None = None, vacation: bool = True,
                     enabled: bool = True) -> str:
    """What Roundcube's managesieve plugin keeps in the script "roundcube": one rule per
    filter, a date-guarded vacation rule, a disabled rule written as ``if false #``."""
    today = datetime.now(PARIS).date()
    lines = ['require ["fileinto","date","relational","vacation"];']
    if fileinto:
        lines += ["# rule:[Devis]", 'if header :contains "subject" "Devis"',
                  "{", f'\tfileinto "{fileinto}";', "}"]
    if vacation:
        guard = (f'allof (currentdate :zone "+0100" :value "ge" "date" '
                 f'"{today - timedelta(days=1)}", currentdate :zone "+0100" :value "le" '
                 f'"date" "{today + timedelta(days=20)}")')
        lines += ["# rule:[Absence]",
                  f"if {'' if enabled else 'false # '}{guard}", "{",
                  f'\tvacation :days 1 :subject "Absente (client)" :from "{ALICE}" '
                  f'"{CLIENT_TEXT}";', "}"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def rig(dovecot_factory):
    sieve_port = free_port()
    # A ManageSieve listener on loopback, as Roundcube and Thunderbird reach it.
    dovecot_factory.extra = f"""
protocols = imap lmtp sieve
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {sieve_port}
  }}
}}
"""
    rig = build_rig(dovecot_factory)
    rig.sieve_port = sieve_port
    store_path = rig.scripts.parent / "state" / "users" / "store.sqlite"
    rig.store_backend = SqliteStore(store_path)  # created before serve: serve never creates it
    rig.store = UserStore(rig.store_backend)
    rig.runtime.overrides.update(user_store=str(store_path), sieve_dir=str(rig.scripts),
                                 dovecot_config=str(rig.dovecot.conf))
    rig.runtime.pm.register(userstore_plugin, name="userstore")
    rig.set_clock(datetime.now(UTC))  # Sieve's currentdate reads Dovecot's real clock
    rig.start_mailcall()
    yield rig
    rig.store_backend.close()
    close_rig(rig)


def upload(rig, user: str, script: str, name: str = "roundcube") -> None:
    """What Roundcube does when the user saves their filters: PUTSCRIPT, SETACTIVE."""
    with Session("127.0.0.1", rig.sieve_port) as session:
        session.login(user, PASSWORD)
        session.put_script(name, script)
        session.set_active(name)


def store_absence(rig, user: str = "alice") -> Path:
    """An absence set on mailcall's page (origin web), then wait for its compiled script."""
    until = (datetime.now(PARIS) + timedelta(days=10)).replace(microsecond=0, tzinfo=None)
    rig.store.set_absence(rig.runtime.policy, user, until=until.isoformat(), backup="bernard",
                          message=STORE_TEXT, actor=user, origin="web")
    script = rig.scripts / USERS_DIR / f"{rig.runtime.policy.users[user].email}.sieve"
    assert wait_for(lambda: script.with_suffix(".svbin").exists(), timeout=10), \
        f"mailcall did not write and compile {script}"
    return script


def replies_to(rig, sender: str = BOB, settle: float = 1.0) -> list[email.message.Message]:
    """Every reply that reached `sender`, after waiting long enough for a second one."""
    wait_for(lambda: rig.smtp.to(sender), timeout=10)
    time.sleep(settle)  # a second reply, if Dovecot sent one, has arrived by now
    return [email.message_from_bytes(m.data, policy=email.policy.default)
            for m in rig.smtp.to(sender)]


def predicted(rig, user: str = "alice"):
    """What mailcall says will answer (the page's sentence), from the user's own view of
    their ManageSieve scripts and the refined policy, decided on the service's loop."""
    address = rig.runtime.policy.users[user].email
    seen = read_client_vacation("127.0.0.1", rig.sieve_port, address, PASSWORD)

    async def decide():
        return who_answers(decision_policy(rig.runtime), user, datetime.now(UTC), seen)

    return rig.loop.run(decide())


def no_sieve_error(rig) -> None:
    log = rig.dovecot.log_text()
    assert "duplicate vacation action" not in log, log[-2000:]  # a runtime error
    assert "Error" not in "\n".join(line for line in log.splitlines() if "sieve" in line), \
        log[-3000:]


def test_a_client_vacation_alone_sends_one_reply_with_the_users_words(rig):
    upload(rig, ALICE, roundcube_script())
    answer = predicted(rig)
    assert answer.by == "client" and [v.reason for v in answer.client] == [CLIENT_TEXT]
    assert rig.deliver(ALICE, message(to=ALICE, subject="Bonjour")) == {}
    replies = replies_to(rig)
    assert len(replies) == 1
    assert replies[0]["Subject"] == "Absente (client)"
    assert CLIENT_TEXT in replies[0].get_content()
    assert len(rig.dovecot.fetch_all(ALICE)) == 1
    # mailcall sees it, read as the user over ManageSieve (what the page does at login).
    seen = read_client_vacation("127.0.0.1", rig.sieve_port, ALICE, PASSWORD)
    assert seen.active == "roundcube"
    assert [v.reason for v in seen.vacations] == [CLIENT_TEXT]
    assert seen.vacations[0].covers(datetime.now(PARIS)) is True
    # IT's way, without the user's password (docs/user-settings.md): doveadm and the reader.
    listed = subprocess.run([DOVEADM, "-c", str(rig.dovecot.conf), "sieve", "list", "-u", ALICE],
                            capture_output=True, text=True, check=True).stdout
    assert listed.split() == ["roundcube", "ACTIVE"]
    got = subprocess.run([DOVEADM, "-c", str(rig.dovecot.conf), "-f", "json", "sieve", "get",
                          "-u", ALICE, "roundcube"], capture_output=True, text=True,
                         check=True).stdout
    shown = subprocess.run([sys.executable, "-m", "mailcall.core.cli", "sieve", "client-vacation"],
                           input=got,
                           capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert "subject 'Absente (client)'" in shown and CLIENT_TEXT in shown
    no_sieve_error(rig)


def test_a_store_absence_alone_sends_mailcalls_one_reply(rig):
    store_absence(rig)
    answer = predicted(rig)
    assert answer.by == "mailcall" and answer.absence.message == STORE_TEXT
    assert answer.client == ()
    assert rig.deliver(ALICE, message(to=ALICE, subject="Bonjour")) == {}
    replies = replies_to(rig)
    assert len(replies) == 1
    assert "Alice Martin" in replies[0]["Subject"]
    body = replies[0].get_content()
    assert STORE_TEXT in body and "Bernard Petit" in body
    assert len(rig.dovecot.fetch_all(ALICE)) == 1
    seen = read_client_vacation("127.0.0.1", rig.sieve_port, ALICE, PASSWORD)
    assert seen.active is None and seen.vacations == ()
    no_sieve_error(rig)


def test_both_set_mailcalls_reply_alone_and_the_mail_is_delivered(rig):
    upload(rig, ALICE, roundcube_script())
    store_absence(rig)
    answer = predicted(rig)  # the page can say: yours is on, mailcall's is sent instead
    assert answer.by == "mailcall" and [v.reason for v in answer.client] == [CLIENT_TEXT]
    for n in range(2):
        assert rig.deliver(ALICE, message(to=ALICE, subject=f"Question {n}")) == {}
    replies = replies_to(rig)
    assert len(replies) == 1  # mailcall's, once per sender (:days); never the client's
    assert "Alice Martin" in replies[0]["Subject"]
    assert STORE_TEXT in replies[0].get_content()
    assert CLIENT_TEXT not in replies[0].get_content()
    assert [m.rcpt_to for m in rig.smtp.messages] == [[BOB]]
    assert len(rig.dovecot.fetch_all(ALICE)) == 2
    no_sieve_error(rig)
    # Another sender: again one reply, mailcall's (the client's never answers meanwhile).
    assert rig.deliver(ALICE, message(to=ALICE, sender="Zoe <zoe@example.org>"),
                       sender="zoe@example.org") == {}
    other = replies_to(rig, "zoe@example.org")
    assert len(other) == 1 and STORE_TEXT in other[0].get_content()
    # The absence cleared on the page: the client's vacation answers again, alone.
    rig.store.clear_absences(rig.runtime.policy, "alice", actor="alice", origin="web")
    script = rig.scripts / USERS_DIR / f"{ALICE}.sieve"
    assert wait_for(lambda: not script.exists(), timeout=10)
    assert predicted(rig).by == "client"
    assert rig.deliver(ALICE, message(to=ALICE, sender="Yann <yann@example.org>"),
                       sender="yann@example.org") == {}
    after = replies_to(rig, "yann@example.org")
    assert len(after) == 1 and CLIENT_TEXT in after[0].get_content()


def create_folder(rig, user: str, name: str) -> None:
    """The folder a Roundcube user picks for a rule exists: they made it in the client."""
    conn = rig.dovecot.imap(user)
    try:
        assert conn.create(name)[0] == "OK"
    finally:
        conn.logout()


def test_the_users_fileinto_rules_still_apply_during_a_mailcall_absence(rig):
    create_folder(rig, ALICE, "Devis")
    upload(rig, ALICE, roundcube_script(fileinto="Devis"))
    store_absence(rig)
    assert rig.deliver(ALICE, message(to=ALICE, subject="Devis inox 316L")) == {}
    assert rig.deliver(ALICE, message(to=ALICE, subject="Autre chose")) == {}
    replies = replies_to(rig)
    assert len(replies) == 1 and STORE_TEXT in replies[0].get_content()
    assert len(rig.dovecot.fetch_all(ALICE, "Devis")) == 1
    assert len(rig.dovecot.fetch_all(ALICE)) == 1
    no_sieve_error(rig)


def test_a_disabled_client_vacation_is_neither_sent_nor_reported(rig):
    create_folder(rig, ALICE, "Devis")
    upload(rig, ALICE, roundcube_script(fileinto="Devis", enabled=False))
    assert rig.deliver(ALICE, message(to=ALICE, subject="Devis inox 316L")) == {}
    assert len(rig.dovecot.fetch_all(ALICE, "Devis")) == 1
    time.sleep(1.0)
    assert rig.smtp.to(BOB) == []
    seen = read_client_vacation("127.0.0.1", rig.sieve_port, ALICE, PASSWORD)
    assert seen.active == "roundcube" and seen.vacations == ()


def test_a_vacation_in_an_included_script_is_found(rig):
    with Session("127.0.0.1", rig.sieve_port) as session:
        session.login(ALICE, PASSWORD)
        session.put_script("vacances", roundcube_script())
        session.put_script("main", 'require "include";\ninclude :personal "vacances";\n')
        session.set_active("main")
    seen = read_client_vacation("127.0.0.1", rig.sieve_port, ALICE, PASSWORD)
    assert seen.active == "main"
    assert [(v.script, v.reason) for v in seen.vacations] == [("vacances", CLIENT_TEXT)]


def test_a_wrong_password_is_an_auth_error_that_does_not_hold_it(rig):
    with pytest.raises(ManageSieveError) as caught:
        read_client_vacation("127.0.0.1", rig.sieve_port, ALICE, "not-the-password")
    assert caught.value.kind == "auth"
    assert "not-the-password" not in str(caught.value)


def test_a_failing_user_rule_loses_no_mail_and_never_sends_the_clients_reply(rig):
    """A rule filing into a folder the user deleted fails at delivery: Dovecot keeps the mail
    in INBOX (implicit keep) and rolls back the delivery's once-per-sender memory, so
    mailcall's reply goes out again for each message (docs/user-settings.md says so);
    the client's vacation never answers, nothing bounces."""
    upload(rig, ALICE, roundcube_script(fileinto="Gone"))
    store_absence(rig)
    for n in range(2):
        assert rig.deliver(ALICE, message(to=ALICE, subject=f"Devis {n}")) == {}
    replies = replies_to(rig)
    assert 1 <= len(replies) <= 2
    assert all(STORE_TEXT in r.get_content() and CLIENT_TEXT not in r.get_content()
               for r in replies)
    assert len(rig.dovecot.fetch_all(ALICE)) == 2
    assert "implicit keep was successful" in rig.dovecot.log_text()


def test_starttls_off_loopback_rules_and_a_checked_certificate(dovecot_factory):
    """What the page does when ManageSieve is not on loopback: STARTTLS, the server's
    certificate checked (here against its own self-signed one), then the same reading."""
    import ssl

    port = free_port()
    certs = Path(tempfile.mkdtemp(prefix="mailcall-msieve-tls-"))
    certs.chmod(0o755)
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(certs / "key.pem"), "-out", str(certs / "cert.pem")],
                       check=True, capture_output=True)
        dovecot = dovecot_factory(users=[ALICE], extra=f"""
protocols = imap lmtp sieve
ssl = yes
ssl_cert = <{certs}/cert.pem
ssl_key = <{certs}/key.pem
service managesieve-login {{
  inet_listener sieve {{
    address = 127.0.0.1
    port = {port}
  }}
}}
""")
        del dovecot
        trusted = ssl.create_default_context(cafile=str(certs / "cert.pem"))
        with Session("127.0.0.1", port, security="starttls", ssl_context=trusted) as session:
            assert isinstance(session.sock, ssl.SSLSocket)
            session.login(ALICE, PASSWORD)
            session.put_script("roundcube", roundcube_script())
            session.set_active("roundcube")
        seen = read_client_vacation("127.0.0.1", port, ALICE, PASSWORD, security="starttls",
                                    ssl_context=trusted)
        assert [v.reason for v in seen.vacations] == [CLIENT_TEXT]
        # The system's CAs do not know this certificate: refused, and said why.
        with pytest.raises(ManageSieveError) as caught:
            Session("127.0.0.1", port, security="starttls")
        assert caught.value.kind == "protocol" and "certificate" in str(caught.value)
        # In clear off loopback: refused before anything is sent.
        with pytest.raises(ManageSieveError, match="in clear"):
            Session("192.0.2.1", port, security="none")
    finally:
        shutil.rmtree(certs, ignore_errors=True)
