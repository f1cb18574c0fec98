"""Two routes: deposits into the mailboxes by [delivery], mail to the outside by [channels] relay.

Issue 10 §4: with ``[delivery] method = "lmtp"`` the SMS-gateway mails went
into Dovecot's LMTP, which answers 550 for any address that is not a local
user. Here a real Dovecot takes the voicemail over LMTP and a real SMTP relay
(aiosmtpd) takes the SMS notification; Dovecot never sees the gateway address.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
from pathlib import Path

import pytest

from mailcall.core.errors import PolicyInvalid
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.host.serve import start_services, stop_services
from mailcall.core.policy.load import compile_text
from mailcall.plugins import channels as channels_plugin
from mailcall.plugins import deposit as deposit_plugin
from tests.deposit.support import voice
from tests.notifications.support import Relay, ScriptedHandler, async_wait_until
from tests.support.policies import small_policy_text

pytestmark = pytest.mark.dovecot

ALICE = "alice@example.test"
GATEWAY = "+33612345678@sms.example.test"


def policy_text(lmtp: str, relay: str | None) -> str:
    channels = {"sms_gateway": "{number}@sms.example.test"}
    if relay is not None:
        channels["relay"] = relay
    return small_policy_text(lmtp, {
        "channels": channels,
        "profiles": {"staff": {"description": "told of voicemail by SMS", "features": {
            "voicemail": {"enabled": True, "formats": ["wav"]},
            "notify": {"voicemail": True, "media": ["sms"], "hours": "always"}}}},
        "users": {"alice": {"name": "Alice Martin", "email": ALICE, "profile": "staff",
                            "extensions": ["201"], "mobile": "+33612345678",
                            "preferred_medium": "sms"}},
    })


def test_lmtp_deposit_and_sms_through_the_relay(dovecot_factory, tmp_path: Path, caplog):
    dovecot = dovecot_factory(users=[ALICE])
    handler = ScriptedHandler()
    with Relay(handler) as relay:
        policy = compile_text(policy_text(f"127.0.0.1:{dovecot.lmtp_port}", relay.address))
        pm = make_plugin_manager(entrypoints=False)
        pm.register(deposit_plugin, name="deposit")
        pm.register(channels_plugin, name="channels")
        runtime = Runtime(policy, pm, overrides={"spool_dir": str(tmp_path / "spool")})

        async def scenario():
            services = await start_services(runtime)
            try:
                await runtime.deposit(voice("1795887901.77"))
                assert await async_wait_until(lambda: handler.accepted, 60), dovecot.log_text()
            finally:
                await stop_services(services, grace=5)

        with caplog.at_level(logging.INFO, "mailcall.notifications"):
            asyncio.run(scenario())

    (sms,) = handler.accepted
    assert sms.rcpt_tos == [GATEWAY] and sms.mail_from == "mailcall@example.test"
    text = email.message_from_bytes(sms.data, policy=email.policy.default)
    assert text["Subject"] == "Nouveau message de Bernard Petit +33698765432"
    assert text.get_content().splitlines() == ["De : Bernard Petit +33698765432",
                                               "Message vocal"]
    (mail,) = dovecot.fetch_all(ALICE)  # the voicemail, and nothing else, went by LMTP
    assert b"Message-Context: voice-message" in mail
    log = dovecot.log_text()
    assert "sms.example.test" not in log and " 550 " not in log
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("notified"))
    assert line.startswith("notified alice by sms of mail <voice.1795887901.77.")
    assert line.endswith(f"@example.test>: relay {relay.address} took {GATEWAY}: "
                         "250 2.0.0 Ok: queued as T1")


def test_relay_is_checked_with_its_key():
    good = policy_text("unix:/run/dovecot/lmtp", None)
    assert compile_text(good).channels.relay == "127.0.0.1:25"  # the local MTA by default
    assert compile_text(policy_text("unix:/run/dovecot/lmtp", "[::1]:587")).channels.relay \
        == "[::1]:587"
    for wrong in ("localhost", "127.0.0.1:99999", "unix:/run/dovecot/lmtp", "a b:25",
                  "smtp://mx:25"):
        with pytest.raises(PolicyInvalid) as exc:
            compile_text(policy_text("unix:/run/dovecot/lmtp", wrong))
        report = exc.value.report()
        assert "channels.relay" in report and "is not HOST:PORT of an SMTP server" in report
        assert f"'{wrong}'" in report
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(policy_text("127.0.0.1:24", "127.0.0.1:24"))
    assert "channels.relay: '127.0.0.1:24' is [delivery] address, Dovecot's LMTP" \
        in exc.value.report()
