"""Notification channels and the dispatcher: limits, de-duplication, loops, media, retries."""

from __future__ import annotations

import asyncio
import http.server
import json
import threading
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcall.core.plans import Notify
from mailcall.core.plugins import make_plugin_manager
from mailcall.core.policy import compile_text
from mailcall.core.runtime import Runtime
from mailcall.plugins import channels as channels_plugin
from mailcall.plugins.channels import (
    ChannelError,
    FileChannel,
    SmsGatewayChannel,
    WebhookChannel,
    generated_message,
    one_line,
)
from mailcall.sieve.notifications import Dispatcher, MailNotice
from tests.sieve.support import OFFICE_HOURS, policy_text

ALICE_SMS = Notify(user="alice", medium="sms", address="+33612345678", why="test")


class Recorder:
    def __init__(self, medium: str, fail: bool = False) -> None:
        self.medium = medium
        self.fail = fail
        self.sent: list[tuple] = []

    async def send(self, notification, subject, text) -> None:
        if self.fail:
            raise ChannelError("gateway down")
        self.sent.append((notification, subject, text))


def runtime_for(tmp_path: Path, rate: int = 20, extra: str = "") -> Runtime:
    text = policy_text(socket=tmp_path / "s", smtp_port=25, file_path=tmp_path / "n.jsonl",
                       rate=rate)
    policy = compile_text(text.replace("[channels]\n", "[channels]\n" + extra, 1))
    pm = make_plugin_manager(entrypoints=False)
    pm.register(channels_plugin, name="channels")
    runtime = Runtime(policy, pm)
    runtime.clock = lambda: OFFICE_HOURS
    return runtime


def notice(msgid: str = "<m@x>", **kw) -> MailNotice:
    base = dict(notifications=(ALICE_SMS,), recipient="alice@stockinox.example",
                sender="bob@example.net", message_id=msgid, subject="Devis", from_header="Bob")
    base.update(kw)
    return MailNotice(**base)


def records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "n.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_rate_limit_per_user_per_hour(tmp_path: Path):
    runtime = runtime_for(tmp_path, rate=2)
    sms = Recorder("sms")
    d = Dispatcher(runtime, [sms, FileChannel(runtime)])

    async def scenario():
        out = [await d.dispatch(notice(f"<{n}@x>")) for n in range(3)]
        runtime.clock = lambda: OFFICE_HOURS + timedelta(hours=1, seconds=1)
        out.append(await d.dispatch(notice("<late@x>")))
        return out

    assert asyncio.run(scenario()) == [["sent"], ["sent"], ["rate-limited"], ["sent"]]
    assert len(sms.sent) == 3
    assert [r["outcome"] for r in records(tmp_path)] == ["sent", "sent", "rate-limited", "sent"]


def test_deduplicated_by_message_id_per_user(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    sms = Recorder("sms")
    d = Dispatcher(runtime, [sms])
    bernard = Notify(user="bernard", medium="sms", address="+33698765432", why="t")

    async def scenario():
        return [await d.dispatch(notice("<Same@X>")), await d.dispatch(notice("<same@x>")),
                await d.dispatch(notice("<same@x>", notifications=(bernard,)))]

    assert asyncio.run(scenario()) == [["sent"], ["duplicate"], ["sent"]]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"auto_submitted": "auto-replied"}, "Auto-Submitted"),
        ({"list_id": "<sales.example>"}, "List-Id"),
        ({"precedence": "bulk"}, "Precedence"),
        ({"sender": ""}, "null"),
        ({"sender": "MAILER-DAEMON@example.net"}, "robot"),
        ({"sender": "mailcall@stockinox.example"}, "mailcall itself"),
    ],
)
def test_never_loops(tmp_path: Path, change: dict, why: str):
    runtime = runtime_for(tmp_path)
    sms = Recorder("sms")
    outcome = asyncio.run(Dispatcher(runtime, [sms]).dispatch(notice(**change)))
    assert outcome[0].startswith("skipped") and why in outcome[0]
    assert sms.sent == []


def test_preferred_medium_is_honoured_and_never_switched(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    sms, webhook = Recorder("sms"), Recorder("webhook")
    d = Dispatcher(runtime, [sms, webhook])
    by_webhook = Notify(user="alice", medium="webhook", address="https://h.example/x", why="t")
    by_email = Notify(user="alice", medium="email", address="alice@x", why="t")
    assert asyncio.run(d.dispatch(notice(notifications=(by_webhook,)))) == ["sent"]
    assert (len(webhook.sent), len(sms.sent)) == (1, 0)
    assert asyncio.run(d.dispatch(notice("<2@x>", notifications=(by_email,)))) == ["no-channel"]
    assert len(sms.sent) == 0


def test_failure_is_reported_not_raised(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    d = Dispatcher(runtime, [Recorder("sms", fail=True), FileChannel(runtime)])
    assert asyncio.run(d.dispatch(notice())) == ["failed: gateway down"]
    assert records(tmp_path)[0]["outcome"] == "failed: gateway down"


def test_queue_is_bounded(tmp_path: Path):
    async def scenario():
        d = Dispatcher(runtime_for(tmp_path), [Recorder("sms")], queue_size=2)
        return [d.submit(notice(str(n))) for n in range(3)]

    assert asyncio.run(scenario()) == [True, True, False]


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
