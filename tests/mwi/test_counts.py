"""Counting voice messages in a real Dovecot through the master user, as the lamp does."""

from __future__ import annotations

import imaplib

import pytest

from mailcall.mwi.counts import CountError, Counts
from mailcall.mwi.imap import ImapCounter, ImapSettings
from tests.mwi.support import MASTER, MASTER_PASSWORD


def counter(mail, **kw) -> ImapCounter:
    return ImapCounter(mail.settings(**kw).imap, key=mail.key)


def count(mail, user="alice", **kw) -> Counts:
    return counter(mail, **kw).count(mail.email(user), mail.email(user))


def test_new_then_seen_then_deleted(mail):
    with pytest.raises(CountError) as err:
        count(mail)
    assert err.value.kind == "folder"  # no folder yet: an error, not 0/0
    mail.deposit("alice", "call-1")
    mail.deposit("alice", "call-2")
    assert count(mail) == Counts(2, 0)
    conn = mail.imap("alice")
    conn.select("Voicemail")
    conn.store("1", "+FLAGS", "\\Seen")
    assert count(mail) == Counts(1, 1)
    conn.store("2", "+FLAGS", "\\Deleted")  # counts drop at the flag, before the expunge
    assert count(mail) == Counts(0, 1)
    conn.expunge()
    conn.logout()
    assert count(mail) == Counts(0, 1)


def test_counting_changes_no_flag(mail):
    mail.deposit("alice", "call-1")
    for _ in range(3):
        assert count(mail) == Counts(1, 0)  # EXAMINE and BODY.PEEK: still unseen


def test_only_mailcall_deposits_count(mail):
    mail.deposit("alice", "call-1")
    conn = mail.imap("alice")
    forged = (b"From: x@evil.example\r\nTo: alice@stockinox.example\r\nSubject: vm\r\n"
              b"Message-ID: <forged@evil.example>\r\nMessage-Context: voice-message\r\n"
              b"Mailcall-Deposit: v1." + b"0" * 64 + b"\r\n\r\nhello\r\n")
    longer = forged.replace(b"voice-message\r\n", b"voice-message-not\r\n").replace(
        b"<forged", b"<longer")
    bare = forged.replace(b"Mailcall-Deposit: v1." + b"0" * 64 + b"\r\n", b"")
    for raw in (forged, longer, bare):
        typ, _ = conn.append("Voicemail", None, None, raw)
        assert typ == "OK"
    # A real deposit of bernard's, moved into alice's folder, is sealed for bernard.
    mail.deposit("bernard", "call-9")
    b = mail.imap("bernard")
    b.select("Voicemail")
    _, data = b.fetch("1", "(BODY.PEEK[])")
    conn.append("Voicemail", None, None, data[0][1])
    b.logout()
    conn.logout()
    assert count(mail) == Counts(1, 0)


def test_sasl_authzid_login(mail):
    mail.deposit("carole", "call-1")
    assert count(mail, "carole") == Counts(1, 0)
    authz = ImapCounter(ImapSettings(port=mail.dovecot.imap_port, master_user=MASTER,
                                     password_file=mail.settings().imap.password_file,
                                     login="authzid"), key=mail.key)
    assert authz.count(mail.email("carole"), mail.email("carole")) == Counts(1, 0)


def test_refused_master_password(mail):
    c = ImapCounter(mail.settings().imap, key=mail.key, password=lambda: "wrong")
    with pytest.raises(CountError) as caught:
        c.count(mail.email("alice"), mail.email("alice"))
    err = caught.value
    assert err.kind == "auth" and "master login" in str(err) and "wrong" not in str(err)


def test_unknown_user_is_refused_not_zero(mail):
    c = counter(mail)
    with pytest.raises(CountError) as caught:
        c.count("nobody@stockinox.example", "x")
    assert caught.value.kind == "auth"  # pass = yes: the master cannot log in as a user that is not


def test_imap_down_is_an_error_not_a_count(mail):
    mail.deposit("alice", "call-1")
    mail.dovecot.stop()
    with pytest.raises(CountError) as caught:
        count(mail)
    assert caught.value.kind == "unreachable"


def test_master_login_only_from_allowed_networks(mail):
    """allow_nets=127.0.0.1/32 in the master passwd file: 127.0.0.2 is refused."""
    mail.deposit("alice", "call-1")
    conn = imaplib.IMAP4("127.0.0.1", mail.dovecot.imap_port)
    conn.login(f'"{mail.email("alice")}*{MASTER}"', MASTER_PASSWORD)
    conn.logout()
    with pytest.raises(imaplib.IMAP4.error):
        remote = _from("127.0.0.2", mail.dovecot.imap_port)
        remote.login(f'"{mail.email("alice")}*{MASTER}"', MASTER_PASSWORD)


class _From(imaplib.IMAP4):
    def __init__(self, source: str, port: int) -> None:
        self._source = source
        super().__init__("127.0.0.1", port)

    def _create_socket(self, timeout):
        import socket

        return socket.create_connection((self.host, self.port), timeout,
                                        source_address=(self._source, 0))


def _from(source: str, port: int) -> imaplib.IMAP4:
    return _From(source, port)


def test_many_messages_in_one_pipelined_exchange(mail):
    """30 deposits (responses arrive in many reads), 10 seen, 5 flagged \\Deleted, plus a
    non-voice message: each decided on its own fetched flags and header lines."""
    for i in range(30):
        mail.deposit("emma", f"call-{i}")
    conn = mail.imap("emma")
    conn.select("Voicemail")
    conn.store("1:10", "+FLAGS", "\\Seen")
    conn.store("26:30", "+FLAGS", "\\Deleted")
    conn.append("Voicemail", None, None, b"From: a@b.example\r\nSubject: not voice\r\n\r\nhi\r\n")
    conn.logout()
    assert count(mail, "emma") == Counts(15, 10)


def _pipeline_peer(after_login: bytes):
    """An IMAP peer: greeting, LOGIN accepted, then `after_login` in answer to the count."""
    import socket
    import threading

    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        peer, _ = listener.accept()
        f = peer.makefile("rb")
        peer.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        tag = f.readline().split(b" ")[0]
        peer.sendall(tag + b" OK logged in\r\n")
        f.readline()  # the pipelined EXAMINE, FETCH, LOGOUT
        peer.sendall(after_login)
        peer.close()

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return listener, t


def _peer_count(mail, after_login: bytes) -> Counts:
    listener, t = _pipeline_peer(after_login)
    try:
        settings = ImapSettings(port=listener.getsockname()[1], timeout=2.0)
        return ImapCounter(settings, key=mail.key, password=lambda: "pw").count("a", "a")
    finally:
        listener.close()
        t.join(2)


def test_a_server_that_closes_after_bye_without_logout_ok_still_counts(mail):
    assert _peer_count(mail, b"* 0 EXISTS\r\nmwi1 OK [READ-ONLY] done\r\n"
                             b"mwi2 OK done\r\n* BYE bye\r\n") == Counts(0, 0)


@pytest.mark.parametrize("answer", [
    b"* 0 EXISTS\r\nmwi1 OK done\r\n",                         # closed before the FETCH ended
    b"mwi1 OK done\r\n* 1 FETCH (UID 1 FLAGS () BODY[] {3}\r\nab",  # closed mid-literal
])
def test_a_count_cut_short_is_an_error_not_a_number(mail, answer):
    with pytest.raises(CountError) as caught:
        _peer_count(mail, answer)
    assert caught.value.kind == "unreachable"


def test_garbage_after_login_is_a_protocol_error(mail):
    with pytest.raises(CountError) as caught:
        _peer_count(mail, b"mwi1 OK done\r\n* 1 FETCH (UID 1 FLAGS \r\n)\r\nmwi2 OK\r\n")
    assert caught.value.kind == "protocol"


def test_a_missing_deposit_key_is_an_error_never_a_dark_lamp(mail):
    """A key that vanished (or a wrong spool_dir) once made the count create a new key:
    no deposit proved against it, and every lamp was published as 0/0."""
    from mailcall.deposit.seal import existing_deposit_key, key_path

    mail.deposit("alice", "call-1")
    assert count(mail) == Counts(1, 0)
    key_path(mail.spool).unlink()
    c = ImapCounter(mail.settings().imap, key=lambda: existing_deposit_key(mail.spool))
    with pytest.raises(CountError) as caught:
        c.count(mail.email("alice"), mail.email("alice"))
    assert caught.value.kind == "key"
    assert "deposit key" in str(caught.value) and "missing" in str(caught.value)
    assert not key_path(mail.spool).exists()  # nothing made up in its place


def test_a_voice_folder_with_a_non_ascii_name(mail):
    """[mail] voice_folder = "Répondeur": sent in modified UTF-7 (RFC 3501 5.1.3); it used
    to raise UnicodeEncodeError on every count of every user, and no lamp ever lit."""
    from dataclasses import replace

    mail.deposit("alice", "call-1")
    conn = mail.imap("alice")
    assert conn.create('"R&AOk-pondeur"')[0] == "OK"
    conn.select("Voicemail")
    assert conn.copy("1", '"R&AOk-pondeur"')[0] == "OK"
    conn.logout()
    settings = replace(mail.settings().imap, folder="Répondeur")
    assert ImapCounter(settings, key=mail.key).count(mail.email("alice"),
                                                      mail.email("alice")) == Counts(1, 0)


def test_an_unreadable_password_file_is_this_machines_problem_not_a_refusal(mail):
    """Every mailbox fails alike, so the lamp logs it once (kind "server"), and the message
    names the file, not Dovecot's master passdb."""
    (mail.work / "imap-master.secret").unlink()
    with pytest.raises(CountError) as err:
        count(mail)
    assert err.value.kind == "server"
    assert "imap-master.secret" in str(err.value)
