"""The test Dovecot's own helpers: the mailbox list read back, the master user written once."""

from __future__ import annotations

import imaplib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.dovecot import PASSWORD, imap_name, listed_names, master_passdb

pytestmark = pytest.mark.dovecot

ALICE = "alice@example.test"
NAMES = ["Trash", "with space", "2024", 'q"uote', "back\\slash", "Dossier spécial", "a{3}"]


def test_every_form_of_a_listed_name_is_read():
    # imaplib's data for LIST: atoms, quoted strings with escapes, a number, modified
    # UTF-7, and a literal (a tuple, then the rest of its line).
    data = [b'(\\HasNoChildren) "." INBOX', b'(\\HasNoChildren) "." Trash',
            b'(\\HasNoChildren) "." "with space"', b'() "." "q\\"uote"', b'() "." 2024',
            b'() "." "Dossier sp&AOk-cial"', (b'() "." {3}', b'a)b'), b'', None]
    assert listed_names(data) == ["INBOX", "Trash", "with space", 'q"uote', "2024",
                                  "Dossier spécial", "a)b"]


def test_mailboxes_are_the_names_the_user_created(dovecot):
    conn = dovecot.imap(ALICE)
    try:
        for name in NAMES:
            typ, data = conn.create(imap_name(name))
            assert typ == "OK", (name, data)
            message = f"Subject: in {name}\r\n\r\nbody\r\n".encode()
            typ, data = conn.append(imap_name(name), None, None, message)
            assert typ == "OK", (name, data)
    finally:
        conn.logout()
    assert sorted(dovecot.mailboxes(ALICE)) == sorted(["INBOX", *NAMES])
    for name in NAMES:
        assert [m.split(b"\r\n")[0] for m in dovecot.fetch_all(ALICE, name)] == [
            f"Subject: in {name}".encode()], name


@pytest.fixture
def work():
    folder = Path(tempfile.mkdtemp(prefix="mailcall-master-"))
    os.chmod(folder, 0o755)  # noqa: S103 - Dovecot's auth process reads the password file
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_master_user_logs_in_as_an_existing_user_only(dovecot_factory, work):
    # Dovecot's per-address penalty still doubles the wait after each refusal: two only.
    d = dovecot_factory(extra=master_passdb(work, "mailcall-mwi", "m-secret")
                        + "auth_failure_delay = 0\n")
    conn = imaplib.IMAP4("127.0.0.1", d.imap_port)
    typ, _ = conn.login(f"{ALICE}*mailcall-mwi", "m-secret")
    assert typ == "OK"
    _typ, data = conn.select("INBOX", readonly=True)
    assert data == [b"0"]
    conn.logout()
    refused = {("nobody@example.test*mailcall-mwi", "m-secret"): "AUTHORIZATIONFAILED",
               (f"{ALICE}*mailcall-mwi", PASSWORD): "AUTHENTICATIONFAILED"}
    for (login, password), why in refused.items():
        conn = imaplib.IMAP4("127.0.0.1", d.imap_port)
        with pytest.raises(imaplib.IMAP4.error, match=why):
            conn.login(login, password)
        conn.shutdown()


def test_a_hashed_master_password_is_written_as_given(dovecot_factory, work):
    import subprocess

    hashed = subprocess.run(["doveadm", "pw", "-s", "SSHA512", "-p", "h-secret"], check=True,
                            capture_output=True, text=True).stdout.strip()
    d = dovecot_factory(extra=master_passdb(work, "mailcall-phone", hashed, hashed=True))
    assert (work / "master.passwd").read_text().startswith(f"mailcall-phone:{hashed}:")
    conn = imaplib.IMAP4("127.0.0.1", d.imap_port)
    typ, _ = conn.login(f"{ALICE}*mailcall-phone", "h-secret")
    assert typ == "OK"
    conn.logout()
