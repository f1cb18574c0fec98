"""The built-in channels: SMS gateway and e-mail through the relay, webhook, file.

Moved from tests/sieve/test_channels.py; added: which failures each channel
calls temporary (retried) or permanent (reported once), and the relay's.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
import unicodedata
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcall.core.decisions.plans import Notify
from mailcall.core.policy.load import compile_text
from mailcall.notifications import (
    ChannelError,
    PermanentChannelError,
    TemporaryChannelError,
)
from mailcall.notifications.channel import is_temporary, temporary_errors_of
from mailcall.notifications.channels import (
    EmailChannel,
    FileChannel,
    SmsGatewayChannel,
    WebhookChannel,
)
from mailcall.notifications.relay import generated_message, one_line
from tests.notifications.support import Relay, ScriptedHandler, free_port
from tests.notifications.test_dispatcher import ALICE_SMS, records, runtime_for
from tests.sieve.support import policy_text


def test_sms_gateway_message(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    sent: list[EmailMessage] = []

    async def capture(msg: EmailMessage) -> None:
        sent.append(msg)

    channel = SmsGatewayChannel(runtime, send=capture)
    asyncio.run(channel.send(ALICE_SMS, "Nouveau courriel\r\nBcc: evil@x", "De : Bob"))
    msg = sent[0]
    assert msg["To"] == "+33612345678@sms.stockinox.example"
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["From"] == "mailcall@stockinox.example"
    assert msg["Bcc"] is None and "evil" in msg["Subject"]
    with pytest.raises(ChannelError, match="not a phone number"):
        asyncio.run(channel.send(Notify("alice", "sms", "abc", "t"), "s", "t"))


@given(st.text(max_size=200))
def test_generated_headers_cannot_be_injected(subject: str):
    policy = compile_text(policy_text(socket=Path("/s"), smtp_port=25, file_path=Path("/n")))
    msg = generated_message(policy, "x@example.net", subject, "body")
    raw = msg.as_bytes()
    head = raw.split(b"\n\n", 1)[0]
    names = [line.split(b":")[0] for line in head.split(b"\n") if line and line[0:1] not in b" \t"]
    assert sorted(names) == sorted([b"From", b"To", b"Subject", b"Date", b"Message-ID",
                                    b"Auto-Submitted", b"X-Auto-Response-Suppress",
                                    b"Content-Type", b"Content-Transfer-Encoding",
                                    b"MIME-Version"])
    assert "\n" not in one_line(subject) and "\r" not in one_line(subject)


@given(st.text(max_size=200))
def test_one_line_is_the_one_rule(value: str):
    """Issue 10 §3: one_line let DEL's neighbours through (C1, bidi, format characters)."""
    shown = one_line(value)
    assert all(c == " " or unicodedata.category(c)[0] not in "CZ" for c in shown)
    assert one_line("a\x7fb\x85c\u202ed\u2066e\u200bf") == "a b c d e f"


class _Hook(http.server.BaseHTTPRequestHandler):
    script: ClassVar[list[int]] = []
    bodies: ClassVar[list[dict]] = []

    def do_POST(self):
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        code = type(self).script.pop(0) if type(self).script else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    class Hook(_Hook):
        script: ClassVar[list[int]] = []
        bodies: ClassVar[list[dict]] = []

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, Hook
    server.shutdown()
    server.server_close()


def test_webhook_retries_server_errors(tmp_path: Path, webhook_server):
    server, hook = webhook_server
    url = f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-IN-PATH/notify?token=secret"
    runtime = runtime_for(tmp_path, extra=f'webhook_url = "{url}"\nwebhook_timeout = 2.0\n')
    hook.script[:] = [500, 503]
    channel = WebhookChannel(runtime, backoff=0.01)
    asyncio.run(channel.send(Notify("alice", "webhook", url, "t"), "Subject", "Text"))
    assert len(hook.bodies) == 3
    assert hook.bodies[-1] == {"user": "alice", "medium": "webhook", "subject": "Subject",
                               "text": "Text", "why": "t"}


def test_webhook_gives_up_on_client_error_without_leaking_token(tmp_path: Path, webhook_server):
    server, hook = webhook_server
    url = f"http://127.0.0.1:{server.server_port}/hooks/T0KEN-IN-PATH/notify?token=secret"
    runtime = runtime_for(tmp_path, extra=f'webhook_url = "{url}"\n')
    hook.script[:] = [403]
    channel = WebhookChannel(runtime, backoff=0.01)
    with pytest.raises(ChannelError) as err:
        asyncio.run(channel.send(Notify("alice", "webhook", url, "t"), "s", "t"))
    assert len(hook.bodies) == 1
    assert "secret" not in str(err.value) and "T0KEN-IN-PATH" not in str(err.value)
    assert f"http://127.0.0.1:{server.server_port}/" in str(err.value)
    # HTTP 4xx: permanent, reported once
    assert not is_temporary(temporary_errors_of(channel), err.value)


def test_webhook_server_errors_and_silence_are_temporary(tmp_path: Path, webhook_server):
    server, hook = webhook_server
    url = f"http://127.0.0.1:{server.server_port}/hooks/T0KEN/notify"
    runtime = runtime_for(tmp_path, extra=f'webhook_url = "{url}"\nwebhook_timeout = 0.5\n')
    hook.script[:] = [503, 502, 500]
    channel = WebhookChannel(runtime, backoff=0.01)
    with pytest.raises(TemporaryChannelError, match="HTTP 500") as err:
        asyncio.run(channel.send(Notify("alice", "webhook", url, "t"), "s", "t"))
    assert is_temporary(temporary_errors_of(channel), err.value) and "T0KEN" not in str(err.value)
    # Nobody listening (connection refused): temporary too.
    down = f"http://127.0.0.1:{free_port()}/x"
    with pytest.raises(TemporaryChannelError):
        asyncio.run(channel.send(Notify("alice", "webhook", down, "t"), "s", "t"))
    # Accepting, never answering: the timeout is temporary.
    silent = __import__("socket").socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    try:
        slow = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
        with pytest.raises(TemporaryChannelError):
            asyncio.run(channel.send(Notify("alice", "webhook", slow, "t"), "s", "t"))
    finally:
        silent.close()


def test_relay_replies_decide_temporary_or_permanent(tmp_path: Path):
    handler = ScriptedHandler(["451 4.7.1 greylisted, come back later",
                               "554 5.7.1 relaying denied"])
    with Relay(handler) as relay:
        runtime = runtime_for(tmp_path, relay_port=relay.port)
        channel = SmsGatewayChannel(runtime)
        with pytest.raises(TemporaryChannelError, match=r"451 4\.7\.1 greylisted") as first:
            asyncio.run(channel.send(ALICE_SMS, "s", "t"))
        assert is_temporary(temporary_errors_of(channel), first.value)
        with pytest.raises(PermanentChannelError, match=r"554 5\.7\.1 relaying denied") as second:
            asyncio.run(channel.send(ALICE_SMS, "s", "t"))
        assert not is_temporary(temporary_errors_of(channel), second.value)
        receipt = asyncio.run(channel.send(ALICE_SMS, "Nouveau", "De : Bob\nObjet : Devis"))
        assert receipt == (f"relay {relay.address} took +33612345678@sms.stockinox.example: "
                           "250 2.0.0 Ok: queued as T1")
        (got,) = handler.accepted
        assert got.rcpt_tos == ["+33612345678@sms.stockinox.example"]
        assert got.mail_from == "mailcall@stockinox.example"
    # The relay gone: connection refused is temporary.
    with pytest.raises(TemporaryChannelError, match="cannot connect") as down:
        asyncio.run(channel.send(ALICE_SMS, "s", "t"))
    assert is_temporary(temporary_errors_of(channel), down.value)


def test_email_channel_goes_to_the_relay(tmp_path: Path):
    handler = ScriptedHandler()
    with Relay(handler) as relay:
        runtime = runtime_for(tmp_path, relay_port=relay.port)
        channel = EmailChannel(runtime)
        asyncio.run(channel.send(Notify("alice", "email", "alice.perso@example.net", "t"),
                                 "Nouveau message", "De : Bob\nObjet : été"))
        with pytest.raises(PermanentChannelError, match="not a mail address"):
            asyncio.run(channel.send(Notify("alice", "email", "no address", "t"), "s", "t"))
    (got,) = handler.accepted
    assert got.rcpt_tos == ["alice.perso@example.net"]
    assert b"Auto-Submitted: auto-generated" in got.data


def test_file_channel_lines_are_whole_under_concurrency(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    channel = FileChannel(runtime)

    async def scenario():
        await asyncio.gather(*(channel.send(Notify("alice", "file", "", "t"), f"s{n}", "x" * 500)
                               for n in range(200)))

    asyncio.run(scenario())
    lines = records(tmp_path)
    assert sorted(r["subject"] for r in lines) == sorted(f"s{n}" for n in range(200))


def test_hook_mailcall_notification_channels(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    offered = [c.medium for batch in runtime.pm.hook.mailcall_notification_channels(
        runtime=runtime) for c in batch]
    assert sorted(offered) == ["email", "file", "sms", "webhook"]
