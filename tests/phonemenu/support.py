"""A real Dovecot with a phone-menu master user, filled by mailcall's own deposit path.

* master user ``mailcall-phone`` (passwd file, ``allow_nets``, ``pass = yes``), as
  the mail store's docs set it up;
* a ``sieve_before`` that files ``Message-Context: voice-message`` into Voicemail
  (what mailcall's generated script does for sealed deposits);
* voicemail are the messages mailcall's builder makes from a real recording,
  sealed with the key of a private spool and delivered over LMTP; mail in
  several shapes (plain, HTML, multipart with an attachment, French, hostile).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import compile_text
from mailcall.deposit.headers import serialise
from mailcall.deposit.seal import deposit_key
from mailcall.deposit.voice_message import build_voice_message
from mailcall.plugins import agi as agi_plugin
from mailcall.plugins import phonemenu as phonemenu_plugin
from mailcall.plugins import speech as speech_plugin
from mailcall.plugins.deposit import encoders_from, mailcall_audio_encoders, origin_for, plan_for
from tests.agi.harness import RecordingDepositor
from tests.agi.support import MEDIA
from tests.support import REPO
from tests.support.dovecot import Dovecot

LIVE_POLICY = REPO / "tests" / "live" / "policy.toml"
MASTER = "mailcall-phone"
MASTER_PASSWORD = "phone-master-pw-for-tests"
USERS = ("alice", "bernard", "carole", "emma", "fanny")
PIN = "2468"
RECORDING = MEDIA / "voicemail-dtmf-end.wav"

FILE_VOICE = """require ["fileinto", "mailbox"];
if header :is "Message-Context" "voice-message" { fileinto :create "Voicemail"; stop; }
"""


def menu_policy_text(text: str | None = None) -> str:
    """The live tests' policy with the phone menu granted to sales (alice, emma), and a PIN
    for carole (office: no mailbox by phone) so that the refusal can be heard."""
    text = text if text is not None else LIVE_POLICY.read_text()
    text = text.replace('greetings = ["unavailable", "busy", "absence"]\n',
                        'greetings = ["unavailable", "busy", "absence"]\n'
                        "mailbox_by_phone = true\n", 1)
    pin_line = next(line for line in text.splitlines() if line.startswith("pin = "))
    text = text.replace('profile = "office"\nextensions = ["203"]\n',
                        f'profile = "office"\nextensions = ["203"]\n{pin_line}\n', 1)
    assert "mailbox_by_phone = true" in text and text.count(pin_line) == 2
    return text


@dataclass
class Mailboxes:
    dovecot: Dovecot
    work: Path
    runtime: Runtime
    depositor: RecordingDepositor

    @property
    def spool(self) -> Path:
        return self.work / "spool"

    def email(self, user: str) -> str:
        return self.runtime.policy.users[user].email

    def phone_config(self) -> Path:
        """phone-menu.toml pointing the mail store at this Dovecot."""
        path = self.work / "phone-menu.toml"
        path.write_text("[mailstore]\n"
                        f"port = {self.dovecot.imap_port}\n"
                        f'password_file = "{self.work / "imap-phone.secret"}"\n')
        return path

    def voicemail(self, user: str, call_id: str, *, caller: str = "+33612345678",
                  name: str = "Client", at: datetime | None = None,
                  recording: Path | None = RECORDING) -> str:
        """A real sealed voice deposit for `user`, as the spool would deliver it."""
        policy = self.runtime.policy
        deposit = VoiceMessage(call_id=call_id, mailbox=user, caller_number=caller,
                               caller_name=name, at=at or datetime.now(UTC), reason="busy",
                               recording=str(recording) if recording else None,
                               duration_ms=None)
        plan = plan_for(policy, deposit)
        encoder = encoders_from(self.runtime.pm).get(plan.audio_format)
        msg = build_voice_message(deposit, plan, origin_for(policy),
                                  recording=str(recording) if recording else None,
                                  encoder=encoder, workdir=self.work,
                                  key=deposit_key(self.spool))
        refused = self.dovecot.lmtp_send(origin_for(policy).sender, [plan.recipient],
                                         serialise(msg))
        assert not refused, refused
        return str(msg["Message-ID"])

    def mail(self, user: str, message: EmailMessage) -> None:
        refused = self.dovecot.lmtp_send("sender@example.org", [self.email(user)],
                                         message.as_bytes())
        assert not refused, refused

    def folder(self, user: str, folder: str) -> list[tuple[int, set[str]]]:
        """(uid, flags) of every message of `folder`, as a mail client sees them."""
        conn = self.dovecot.imap(self.email(user))
        try:
            typ, _ = conn.select(f'"{folder}"')
            if typ != "OK":
                return []
            _typ, data = conn.uid("FETCH", "1:*", "(FLAGS)")
            out = []
            for item in data:
                if not item:
                    continue
                text = (item if isinstance(item, bytes) else item[0]).decode()
                uid = re.search(r"UID (\d+)", text)
                flags = re.search(r"FLAGS \(([^)]*)\)", text)
                if uid and flags:
                    out.append((int(uid[1]), set(flags[1].split())))
            return sorted(out)
        finally:
            conn.logout()


def plain_mail(subject: str, body: str, *, sender: str = "Jean Dupont <jean@example.org>",
               minutes_ago: int = 5, language: str | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "alice@stockinox.example"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime.now(UTC) - timedelta(minutes=minutes_ago))
    msg["Message-ID"] = f"<{abs(hash((subject, body)))}@example.org>"
    if language:
        msg["Content-Language"] = language
    msg.set_content(body)
    return msg


def html_mail(subject: str, html: str, **kw) -> EmailMessage:
    msg = plain_mail(subject, "x", **kw)
    msg.clear_content()
    msg.set_content(html, subtype="html")
    return msg


def start_mailboxes(dovecot_factory, policy_text: str | None = None) -> Mailboxes:
    work = Path(tempfile.mkdtemp(prefix="mailcall-phonemenu-"))
    os.chmod(work, 0o755)  # noqa: S103 - Dovecot's auth and imap processes read files here
    (work / "master.passwd").write_text(
        f"{MASTER}:{{PLAIN}}{MASTER_PASSWORD}::::::allow_nets=127.0.0.1/32\n")
    (work / "imap-phone.secret").write_text(MASTER_PASSWORD + "\n")
    (work / "imap-phone.secret").chmod(0o600)
    (work / "file-voice.sieve").write_text(FILE_VOICE)
    (work / "spool").mkdir(mode=0o700)
    pm = make_plugin_manager(entrypoints=False)
    for name, plugin in (("agi", agi_plugin), ("speech", speech_plugin),
                         ("phonemenu", phonemenu_plugin)):
        pm.register(plugin, name=name)
    pm.register(_Encoders(), name="encoders")
    policy = compile_text(menu_policy_text(policy_text), name="phonemenu-test-policy.toml")
    runtime = Runtime(policy, pm, policy_path=work / "policy.toml", overrides={
        "spool_dir": str(work / "spool"), "greetings_dir": str(work / "greetings")})
    depositor = RecordingDepositor()
    runtime.depositor = depositor
    extra = f"""
auth_master_user_separator = *
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {work / 'master.passwd'}
  master = yes
  pass = yes
}}
"""
    users = [policy.users[u].email for u in USERS]
    d = dovecot_factory(plugin={"sieve_before": str(work / "file-voice.sieve")}, users=users,
                        extra=extra)
    d.sievec(work / "file-voice.sieve")
    boxes = Mailboxes(dovecot=d, work=work, runtime=runtime, depositor=depositor)
    os.environ["MAILCALL_PHONE_MENU_CONFIG"] = str(boxes.phone_config())
    return boxes


class _Encoders:
    """The deposit plugin's encoders (Opus), without its spool service."""

    from mailcall.core.hookspecs import hookimpl

    @hookimpl
    def mailcall_audio_encoders(self) -> list:
        return mailcall_audio_encoders()


def cleanup(boxes: Mailboxes) -> None:
    os.environ.pop("MAILCALL_PHONE_MENU_CONFIG", None)
    shutil.rmtree(boxes.work, ignore_errors=True)
