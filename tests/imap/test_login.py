"""mailcall.imap.connect_as against a real Dovecot with a master user (tests/mwi/support.py)."""

from __future__ import annotations

import shutil
import socket
import threading

import pytest

from mailcall.imap import ImapLoginError, ImapSettings, connect_as, logout_quietly
from tests.mwi.support import MASTER, MASTER_PASSWORD, start_mail


@pytest.fixture
def mail(dovecot_factory):
    m = start_mail(dovecot_factory)
    yield m
    shutil.rmtree(m.work, ignore_errors=True)


def settings(mail, **kw) -> ImapSettings:
    base = {"port": mail.dovecot.imap_port, "master_user": MASTER,
            "password_file": str(mail.work / "imap-master.secret"), "timeout": 5.0}
    return ImapSettings(**{**base, **kw})


@pytest.mark.parametrize("how", ["master", "authzid"])
def test_connect_as_logs_in_as_the_user(mail, how):
    mail.deposit("alice", "call-1")
    conn = connect_as(settings(mail, login=how), mail.email("alice"))
    try:
        assert conn.state == "AUTH"
        typ, data = conn.select('"Voicemail"', readonly=True)
        assert typ == "OK" and data == [b"1"]  # alice's folder, not the master's
        typ, data = conn.namespace()
        assert typ == "OK"
    finally:
        logout_quietly(conn)


def test_password_given_directly_or_as_callable(mail):
    for password in (MASTER_PASSWORD, lambda: MASTER_PASSWORD):
        conn = connect_as(settings(mail, password_file="/nonexistent"), mail.email("bernard"),
                          password)
        logout_quietly(conn)


@pytest.mark.parametrize("how", ["master", "authzid"])
def test_wrong_password_is_auth_and_never_shown(mail, how):
    with pytest.raises(ImapLoginError) as caught:
        connect_as(settings(mail, login=how), mail.email("alice"), "not-the-password")
    err = caught.value
    assert err.kind == "auth"
    assert "not-the-password" not in str(err) and MASTER_PASSWORD not in str(err)
    assert f"127.0.0.1:{mail.dovecot.imap_port}" in str(err) and "imap-master.secret" in str(err)


def test_unknown_user_is_auth(mail):
    with pytest.raises(ImapLoginError) as caught:
        connect_as(settings(mail), "nobody@stockinox.example")
    assert caught.value.kind == "auth"


def test_password_file_problems_are_auth_and_name_the_file(mail, tmp_path):
    empty = tmp_path / "empty.secret"
    empty.write_text("\n")
    for path, words in ((tmp_path / "missing.secret", "cannot read"), (empty, "is empty")):
        with pytest.raises(ImapLoginError) as caught:
            connect_as(settings(mail, password_file=str(path)), mail.email("alice"))
        assert caught.value.kind == "auth"
        assert str(path) in str(caught.value) and words in str(caught.value)


def test_server_down_is_unreachable(mail):
    port = mail.dovecot.imap_port
    mail.dovecot.stop()
    with pytest.raises(ImapLoginError) as caught:
        connect_as(settings(mail, port=port), mail.email("alice"))
    assert caught.value.kind == "unreachable" and f"127.0.0.1:{port}" in str(caught.value)


def test_starttls_not_offered_is_protocol(mail):
    # The test Dovecot has no TLS certificate: STARTTLS is not offered, nothing is sent in clear.
    with pytest.raises(ImapLoginError) as caught:
        connect_as(settings(mail, security="starttls"), mail.email("alice"))
    assert caught.value.kind == "protocol" and "starttls" in str(caught.value)


def test_clear_text_to_a_remote_server_is_refused_before_connecting():
    # 192.0.2.1 (TEST-NET-1) is never contacted: the refusal comes first.
    with pytest.raises(ImapLoginError) as caught:
        connect_as(ImapSettings(host="192.0.2.1", timeout=0.5), "alice", "pw")
    assert caught.value.kind == "auth" and "in clear" in str(caught.value)


@pytest.mark.parametrize("user", ["", "alice\r\na1 LOGOUT", "alice\0x"])
def test_user_names_that_would_inject_are_refused(user):
    with pytest.raises(ImapLoginError) as caught:
        connect_as(ImapSettings(port=1), user, "pw")
    assert caught.value.kind == "auth"


def test_garbage_greeting_is_protocol():
    """A broken peer on the port (not an IMAP server): a clear error, no hang."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve() -> None:
        peer, _ = listener.accept()
        peer.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")
        peer.recv(1024)
        peer.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    try:
        with pytest.raises(ImapLoginError) as caught:
            connect_as(ImapSettings(port=port, timeout=2.0), "alice", "pw")
        assert caught.value.kind == "protocol"
    finally:
        listener.close()
        t.join(2)


def _recording_server(greeting: bytes):
    """A minimal IMAP peer that records the commands it gets and accepts LOGIN."""
    listener = socket.create_server(("127.0.0.1", 0))
    got: list[bytes] = []

    def serve() -> None:
        peer, _ = listener.accept()
        f = peer.makefile("rb")
        peer.sendall(greeting)
        while line := f.readline():
            got.append(line)
            tag, _, rest = line.partition(b" ")
            if rest.upper().startswith(b"CAPABILITY"):
                peer.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
            else:
                peer.sendall(tag + b" OK done\r\n")
        peer.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener, got, t


@pytest.mark.parametrize(("greeting", "asks"), [
    (b"* OK [CAPABILITY IMAP4rev1 LITERAL+ AUTH=PLAIN] ready\r\n", False),
    (b"* OK ready\r\n", True),
])
def test_capabilities_from_the_greeting_spare_a_round_trip(greeting, asks):
    listener, got, t = _recording_server(greeting)
    try:
        conn = connect_as(ImapSettings(port=listener.getsockname()[1], timeout=2.0), "alice",
                          "pw")
        assert "IMAP4REV1" in conn.capabilities
        logout_quietly(conn)
        t.join(2)
    finally:
        listener.close()
    commands = [line.split(b" ")[1].upper().strip() for line in got]
    assert (b"CAPABILITY" in commands) is asks
    assert b"LOGIN" in commands
