"""One call end to end, every part real but Asterisk (replayed from the traces).

A caller rings Alice (customer-facing); nobody answers desk, mobile or backups;
the caller leaves a message and hangs up while recording. The recording goes
through the durable spool, LMTP, Dovecot's generated Sieve script (filed into
Voicemail), and Alice's mobile notification (her preferred medium is mail) is
sent by the same dispatcher the Sieve bridge uses. Everything is read back
over IMAP.
"""

from __future__ import annotations

import email
import io
import shutil
import socket
import tempfile
from datetime import datetime
from email import policy as email_policy
from pathlib import Path
from zoneinfo import ZoneInfo

import soundfile

from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.host.serve import start_services, stop_services
from mailcall.core.policy.load import compile_text
from mailcall.sieve.commands import install
from tests.agi.fake_asterisk import Call, run_call
from tests.notifications.support import ForwardingHandler, Relay
from tests.sieve.support import LoopThread, dovecot_plugin, make_socket_dir, wait_for
from tests.support import EXAMPLE_POLICY

USERS = ["alice@stockinox.example", "bernard@stockinox.example", "carole@stockinox.example"]
TUESDAY_10 = datetime(2026, 12, 1, 10, 5, tzinfo=ZoneInfo("Europe/Paris"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def policy_text(lmtp_port: int, sieve_socket: str, relay: str) -> str:
    text = EXAMPLE_POLICY.read_text()
    text = text.replace('preferred_medium = "sms"', 'preferred_medium = "email"')
    # Notices go out by the relay (the site's MTA, here a tiny one forwarding to Dovecot).
    text = text.replace("[channels]\n", f'[channels]\nrelay = "{relay}"\n', 1)
    return text + (f'\n[server]\nsieve_socket = "{sieve_socket}"\n'
                   f'[delivery]\nmethod = "lmtp"\naddress = "127.0.0.1:{lmtp_port}"\n')


def test_unanswered_call_ends_as_voicemail_in_the_mailbox(dovecot_factory, tmp_path):
    # Dovecot's mail processes (uid 5000) read the Sieve scripts: not under pytest's 0700 tmp.
    work = Path(tempfile.mkdtemp(prefix="mailcall-e2e-"))
    work.chmod(0o755)
    scripts = work / "sieve"
    dovecot = dovecot_factory(plugin=dovecot_plugin(scripts, None), users=USERS)
    sieve_socket = make_socket_dir(dovecot.base_dir) / "mailcall"
    relay = Relay(ForwardingHandler(dovecot.lmtp_port)).start()
    policy = compile_text(policy_text(dovecot.lmtp_port, str(sieve_socket), relay.address))
    install(policy, scripts, None, str(sieve_socket), dovecot.conf)

    agi_port = free_port()
    runtime = Runtime(policy, make_plugin_manager(), overrides={
        "agi_listen": f"127.0.0.1:{agi_port}", "spool_dir": str(work / "spool"),
        "greetings_dir": str(work / "greetings")})
    runtime.clock = lambda: TUESDAY_10
    loop = LoopThread()
    services = loop.run(start_services(runtime))
    try:
        names = {s.name for s in services}
        assert {"agi", "deposit-spool", "sieve-bridge", "notifications"} <= names
        call = Call(script="route", args=("201",), callerid="+33611111111",
                    calleridname="Bernard Stock Inox", uniqueid="1795887901.31",
                    dials=["noanswer"] * 4, record="hangup")
        loop.run(run_call(call, "127.0.0.1", agi_port, timeout=20))

        dials = [c for c in call.commands if c.startswith("EXEC Dial")]
        assert dials == ['EXEC Dial "PJSIP/201,20"\n', 'EXEC Dial "PJSIP/+33612345678@trunk,20"\n',
                         'EXEC Dial "PJSIP/202,20"\n', 'EXEC Dial "PJSIP/203&PJSIP/204,20"\n']
        assert len(call.recorded_to) == 1

        voice = wait_for(lambda: dovecot.fetch_all("alice@stockinox.example", "Voicemail"), 30)
        assert len(voice) == 1, dovecot.log_text()
        msg = email.message_from_bytes(voice[0], policy=email_policy.default)
        assert msg["Message-Context"] == "voice-message"
        assert "1795887901.31" in msg["Message-ID"]
        audio = next(p for p in msg.walk() if p.get_content_maintype() == "audio")
        assert audio.get_content_type() == "audio/ogg"       # alice's profile: opus first
        info = soundfile.info(io.BytesIO(audio.get_content()))
        assert abs(info.duration - 2.25) <= 0.05              # voicemail-hangup-end.wav
        text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
        assert "+33611111111" in text.get_content()

        notices = wait_for(lambda: [m for m in dovecot.fetch_all("alice@stockinox.example")
                                    if b"Auto-Submitted: auto-generated" in m], 30)
        assert len(notices) == 1, dovecot.log_text()
        note = email.message_from_bytes(notices[0], policy=email_policy.default)
        assert "Bernard Stock Inox" in note["Subject"]
        assert dovecot.fetch_all("alice@stockinox.example", "Voicemail") == voice  # no duplicate
    finally:
        loop.run(stop_services(services, grace=5))
        loop.close()
        relay.stop()
        shutil.rmtree(work, ignore_errors=True)
