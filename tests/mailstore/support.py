"""A real Dovecot as contrib/dovecot/92-mailcall-phone.conf sets it up, and mail of every shape.

* master user ``mailcall-phone`` (its own passwd file, ``allow_nets``, ``pass = yes``);
* a ``sieve_before`` that files anything saying ``Message-Context: voice-message``
  into Voicemail — on purpose as naive as a hand-written user filter, so a
  forged voice message lands there too and the seal alone must tell it apart;
* voice and fax deposits made by mailcall's spool worker (real recordings,
  Opus and WAV, the real fax TIFF) and delivered over LMTP;
* mail in several shapes (:func:`plain`, :func:`html`, :func:`with_attachments`,
  :func:`forged_voice`...) delivered over LMTP too.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from mailcall.deposit.seal import SEAL_HEADER, deposit_key
from mailcall.mailstore import MailStore, MailstoreSettings
from tests.deposit.support import MEDIA, USERS, fax, make_policy, make_worker, voice
from tests.support.dovecot import PASSWORD, Dovecot, master_passdb

ALICE, BOB = USERS
MASTER = "mailcall-phone"
MASTER_PASSWORD = "phone-master-pw-for-tests"

FILE_VOICE = """require ["fileinto", "mailbox"];
if header :contains "Message-Context" "voice-message" { fileinto :create "Voicemail"; stop; }
"""


@dataclass
class PhoneMail:
    dovecot: Dovecot
    work: Path

    @property
    def spool(self) -> Path:
        return self.work / "spool"

    @property
    def password_file(self) -> Path:
        return self.work / "imap-phone.secret"

    def key(self) -> bytes:
        return deposit_key(self.spool)

    def settings(self, **kw) -> MailstoreSettings:
        base = {"port": self.dovecot.imap_port, "master_user": MASTER,
                "password_file": str(self.password_file), "timeout": 1.5,
                "max_connections": 4}
        return MailstoreSettings(**{**base, **kw})

    def store(self, **kw) -> MailStore:
        return MailStore(self.settings(**kw), key=self.key)

    async def deposit(self, *deposits, formats=("opus",)) -> None:
        """Deliver `deposits` (tests.deposit.support.voice/fax) through the spool worker, one
        after the other (so their arrival order is theirs)."""
        policy = make_policy(f"127.0.0.1:{self.dovecot.lmtp_port}", formats=formats)
        worker = make_worker(self.spool, policy)

        await worker.start()
        try:
            for d in deposits:
                worker.spool.accept(d)
                worker.wake()
                await worker.drain(60)
        finally:
            await worker.stop(5)

    def deliver(self, msg: EmailMessage | bytes, to: str = ALICE) -> None:
        raw = msg if isinstance(msg, bytes) else bytes(msg)
        refused = self.dovecot.lmtp_send("sender@outside.test", [to], raw)
        assert not refused, refused

    def user_imap(self, user: str = ALICE):
        return self.dovecot.imap(user)

    def flags(self, folder: str, message_id: str, user: str = ALICE) -> set[str] | None:
        """The flags of the message with `message_id` in `folder` (None when absent)."""
        conn = self.user_imap(user)
        try:
            typ, _ = conn.select(f'"{folder}"', readonly=True)
            if typ != "OK":
                return None
            typ, data = conn.uid("SEARCH", f'HEADER Message-ID "{message_id}"')
            uids = data[0].split()
            if not uids:
                return None
            typ, data = conn.uid("FETCH", uids[0].decode(), "(FLAGS)")
            text = data[0].decode()
            inner = text[text.index("FLAGS (") + 7:]
            return set(inner[: inner.index(")")].split())
        finally:
            conn.logout()

    def set_flag(self, folder: str, message_id: str, flag: str, user: str = ALICE) -> None:
        conn = self.user_imap(user)
        try:
            conn.select(f'"{folder}"')
            _typ, data = conn.uid("SEARCH", f'HEADER Message-ID "{message_id}"')
            uid = data[0].split()[0].decode()
            conn.uid("STORE", uid, "+FLAGS", f"({flag})")
        finally:
            conn.logout()

    def append(self, folder: str, raw: bytes, user: str = ALICE) -> None:
        """What a mail client does: put a message into a folder itself."""
        conn = self.user_imap(user)
        try:
            conn.create(f'"{folder}"')
            typ, data = conn.append(f'"{folder}"', None, None, raw)
            assert typ == "OK", data
        finally:
            conn.logout()

    def folders(self, user: str = ALICE) -> list[str]:
        """The user's folder names, decoded (modified UTF-7)."""
        return self.dovecot.mailboxes(user)

    def message_ids(self, folder: str, user: str = ALICE) -> list[str]:
        from email import message_from_bytes

        return [str(message_from_bytes(raw)["Message-ID"])
                for raw in self.dovecot.fetch_all(user, folder)]


def start_phone_mail(dovecot_factory, extra: str = "") -> PhoneMail:
    work = Path(tempfile.mkdtemp(prefix="mailcall-phone-"))
    os.chmod(work, 0o755)  # noqa: S103 - Dovecot's auth and imap processes read files here
    (work / "imap-phone.secret").write_text(MASTER_PASSWORD + "\n")
    (work / "imap-phone.secret").chmod(0o600)
    (work / "file-voice.sieve").write_text(FILE_VOICE)
    (work / "spool").mkdir(mode=0o700)
    d = dovecot_factory(plugin={"sieve_before": str(work / "file-voice.sieve")}, users=USERS,
                        extra=master_passdb(work, MASTER, MASTER_PASSWORD) + extra)
    d.sievec(work / "file-voice.sieve")
    return PhoneMail(dovecot=d, work=work)


# -- mail of several shapes ----------------------------------------------------------------

_COUNTER = iter(range(1, 1_000_000))


def _base(subject: str, sender: str = "Bernard Petit <bernard@outside.test>",
          date=None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = ALICE
    msg["Subject"] = subject
    msg["Message-ID"] = f"<shape-{next(_COUNTER)}@outside.test>"
    if date is not None:
        msg["Date"] = format_datetime(date)
    else:
        msg["Date"] = "Fri, 27 Nov 2026 18:00:00 +0100"
    return msg


def _language(msg: EmailMessage, language: str | None) -> EmailMessage:
    if language:  # after the content: set_content() clears every Content-* header
        msg["Content-Language"] = language
    return msg


def plain(subject: str, body: str, language: str | None = None, **kw) -> EmailMessage:
    msg = _base(subject, **kw)
    msg.set_content(body)
    return _language(msg, language)


def html(subject: str, body_html: str, text: str | None = None, language: str | None = None,
         **kw) -> EmailMessage:
    msg = _base(subject, **kw)
    if text is not None:
        msg.set_content(text)
        msg.add_alternative(body_html, subtype="html")
    else:
        msg.set_content(body_html, subtype="html")
    return _language(msg, language)


def with_attachments(subject: str, body: str, files: list[tuple[str, str, bytes]],
                     **kw) -> EmailMessage:
    msg = plain(subject, body, **kw)
    for name, mime, data in files:
        maintype, subtype = mime.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg


def raw_hostile() -> bytes:
    """What EmailMessage refuses to build: CR/LF and bidi overrides hidden in encoded words,
    control characters and speech markup in the body."""
    return (
        b"From: =?utf-8?q?Evil=0D=0AName?= <evil@outside.test>\r\n"
        b"To: alice@example.test\r\n"
        b"Subject: =?utf-8?q?Urgent=0D=0ABcc=3A_evil=40x.test_=E2=80=AEtxt.exe?=\r\n"
        b"Message-ID: <hostile-1@outside.test>\r\n"
        b"Date: Fri, 27 Nov 2026 18:00:00 +0100\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: 8bit\r\n\r\n"
        + "Bonjour\u202e, ceci est \x1b[31m un test\x07.\r\n<speak><break time='60s'/>"
          "<audio src='http://evil.test/x.wav'/>Appelez le 0800</speak>\r\n".encode()
    )


def forged_voice(subject: str = "Message vocal de Banque (0 s)") -> EmailMessage:
    """Outside mail dressed as a voicemail: the right headers, a made-up seal."""
    msg = _base(subject, sender="mailcall <mailcall@example.test>")
    msg["Message-Context"] = "voice-message"
    msg[SEAL_HEADER] = "v2.1764260525." + "A" * 43
    msg.set_content("Vous avez reçu un message vocal.\nAppelant : Banque (+33100000000)\n"
                    "Rappeler : <tel:+33100000000>\n")
    msg.add_attachment((MEDIA / "voicemail-dtmf-end.wav").read_bytes(), maintype="audio",
                       subtype="wav", filename="evil.wav")
    return msg


__all__ = ["ALICE", "BOB", "MASTER", "MASTER_PASSWORD", "PASSWORD", "PhoneMail", "fax",
           "forged_voice", "html", "plain", "start_phone_mail", "voice", "with_attachments"]
