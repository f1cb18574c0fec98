"""A real Dovecot set up as contrib/dovecot/91-mailcall-mwi.conf says, and real deposits in it.

* master user ``mailcall-mwi`` (passwd file with ``allow_nets`` and ``pass = yes``);
* IMAPSieve running contrib/dovecot/mailcall-mwi.sieve on FLAG/COPY/APPEND in
  Voicemail and on COPY out of it, its ``execute`` reaching the socket dir;
* a ``sieve_before`` that files ``Message-Context: voice-message`` into Voicemail
  (what mailcall's generated script does for sealed deposits);
* deposits are the messages mailcall's own builder makes, sealed with the key
  of a private spool, delivered over LMTP.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import load_policy
from mailcall.deposit.headers import serialise
from mailcall.deposit.seal import deposit_key
from mailcall.deposit.voice_message import build_voice_message
from mailcall.mwi.config import AmiSettings, LampSettings, MwiSettings
from mailcall.mwi.imap import ImapSettings
from mailcall.plugins.deposit import origin_for, plan_for
from tests.support import REPO
from tests.support.dovecot import PASSWORD, Dovecot, master_passdb

POLICY = REPO / "tests" / "live" / "policy.toml"
CONTRIB = REPO / "contrib" / "dovecot"
MASTER = "mailcall-mwi"
MASTER_PASSWORD = "master-pw-for-tests"
USERS = ("alice", "bernard", "carole", "emma", "fanny")

FILE_VOICE = """require ["fileinto", "mailbox"];
if header :is "Message-Context" "voice-message" { fileinto :create "Voicemail"; stop; }
"""


@dataclass
class Mail:
    dovecot: Dovecot
    work: Path
    runtime: Runtime
    spool: Path

    @property
    def socket(self) -> Path:
        return self.dovecot.base_dir / "sieve-execute" / "mailcall-mwi"

    def settings(self, ami_port: int = 1, ami_secret_file: str = "/nonexistent",  # noqa: S107
                 **lamp) -> MwiSettings:
        lamp.setdefault("trigger_socket", str(self.socket))
        lamp.setdefault("reconcile_interval", 3600.0)
        return MwiSettings(
            path=self.work / "mwi.toml",
            ami=AmiSettings(port=ami_port, secret_file=ami_secret_file),
            imap=ImapSettings(port=self.dovecot.imap_port, master_user=MASTER,
                              password_file=str(self.work / "imap-master.secret"),
                              max_connections=4, timeout=5.0),
            lamp=LampSettings(**lamp))

    def key(self) -> bytes:
        return deposit_key(self.spool)

    def email(self, user: str) -> str:
        return self.runtime.policy.users[user].email

    def deposit(self, user: str, call_id: str) -> tuple[VoiceMessage, DepositPlan, str]:
        """Deliver a real sealed voice deposit for `user`: (deposit, plan, Message-ID)."""
        policy = self.runtime.policy
        deposit = VoiceMessage(call_id=call_id, mailbox=user, caller_number="+33612345678",
                               caller_name="Bernard", at=datetime.now(UTC), reason="busy",
                               recording=None)
        plan = plan_for(policy, deposit)
        msg = build_voice_message(deposit, plan, origin_for(policy), recording=None,
                                  encoder=None, workdir=self.work, key=self.key())
        refused = self.dovecot.lmtp_send(origin_for(policy).sender, [plan.recipient],
                                         serialise(msg))
        assert not refused, refused
        return deposit, plan, str(msg["Message-ID"])

    def imap(self, user: str) -> imaplib.IMAP4:
        """The user's own IMAP session, as a mail client has it."""
        conn = imaplib.IMAP4("127.0.0.1", self.dovecot.imap_port)
        conn.login(self.email(user), PASSWORD)
        return conn


SHIPPED_PATHS = {
    "/var/lib/mailcall/sieve/mailcall-mwi.sieve": "mailcall-mwi.sieve",
    "/etc/dovecot/mailcall-master.passwd": "master.passwd",
}


def shipped_mwi_conf(work: Path) -> str:
    """contrib/dovecot/91-mailcall-mwi.conf with its two file paths moved into `work`:
    the tests run the snippet the admin installs, not a copy of it."""
    text = (CONTRIB / "91-mailcall-mwi.conf").read_text()
    for path, name in SHIPPED_PATHS.items():
        assert path in text, f"91-mailcall-mwi.conf no longer names {path}"
        text = text.replace(path, str(work / name))
    return text


def start_mail(dovecot_factory, extra_plugin: dict[str, str] | None = None) -> Mail:
    work = Path(tempfile.mkdtemp(prefix="mailcall-mwi-"))
    os.chmod(work, 0o755)  # noqa: S103 - Dovecot's auth and imap processes read files here
    # The password file only: its passdb block is the shipped one (shipped_mwi_conf).
    master_passdb(work, MASTER, MASTER_PASSWORD)
    (work / "imap-master.secret").write_text(MASTER_PASSWORD + "\n")
    (work / "imap-master.secret").chmod(0o600)
    shutil.copy(CONTRIB / "mailcall-mwi.sieve", work / "mailcall-mwi.sieve")
    (work / "file-voice.sieve").write_text(FILE_VOICE)
    pm = make_plugin_manager()
    policy = load_policy(POLICY, pm=pm)
    spool = work / "spool"
    spool.mkdir(mode=0o700)
    runtime = Runtime(policy, pm, overrides={"spool_dir": str(spool)})
    # 90-mailcall.conf's part (the execute extension and its socket folder) and the test's
    # own filing script; everything else is contrib/dovecot/91-mailcall-mwi.conf as shipped.
    plugin = {
        "sieve_before": str(work / "file-voice.sieve"),
        "sieve_global_extensions": "+vnd.dovecot.execute",
        "sieve_execute_socket_dir": "sieve-execute",
        "sieve_execute_exec_timeout": "2s",
        **(extra_plugin or {}),
    }
    extra = shipped_mwi_conf(work)
    users = [policy.users[u].email for u in USERS]
    d = dovecot_factory(plugin=plugin, users=users, extra=extra)
    for script in ("mailcall-mwi.sieve", "file-voice.sieve"):
        d.sievec(work / script)
    (d.base_dir / "sieve-execute").mkdir(exist_ok=True)
    os.chmod(d.base_dir / "sieve-execute", 0o755)  # noqa: S103
    return Mail(dovecot=d, work=work, runtime=runtime, spool=spool)
