"""Issue 11 §1, proved: a third-party plugin package adds a medium, an audio and a fax format.

``mailcall-chat`` (beside this file) is built and pip-installed as its own
distribution into a private folder; ``mailcall`` runs with that folder on
``PYTHONPATH``, so importlib.metadata finds its ``mailcall`` entry point as it
would in a site's virtualenv. Nothing in ``core/`` knows "chat", "flac" or "png":
``mailcall check`` validates the plugin's ``[channels.chat]`` settings and user
key from its declaration; a real voicemail through ``mailcall serve``, the
spool and a real Dovecot arrives as FLAC and is announced on the chat service
(a small HTTP server run by the test); a real received fax (the G3 TIFF of the
traces) through the fax AGI script, the spool and the delivery process arrives
as the plugin's PNG next to the built-in PDF.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from email import policy as email_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pypdf
import pytest
import soundfile
from PIL import Image

from tests.agi.fake_asterisk import RECORDED, Call, run_call
from tests.sieve.support import wait_for
from tests.support import MEDIA, REPO

HERE = Path(__file__).resolve().parent
MAILCALL = REPO / ".venv" / "bin" / "mailcall"
ALICE = "alice@chat.example"
TOKEN = "s3cret-chat-token-7f1e"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """The plugin, built from a copy of its sources and installed with pip into `site`."""
    root = tmp_path_factory.mktemp("third-party")
    source = root / "src"
    shutil.copytree(HERE / "mailcall-chat", source,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    site = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    assert list(site.glob("mailcall_chat-1.2.0.dist-info")), sorted(p.name for p in site.iterdir())
    return site


def env_with(site: Path | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",
                                                             "MAILCALL_DISABLE_PLUGINS")}
    if site is not None:
        env["PYTHONPATH"] = str(site)
    return env


def mailcall(site: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(MAILCALL), *args], capture_output=True, text=True,
                          env=env_with(site), timeout=120, check=False)


def policy_text(work: Path, *, lmtp_port: int = 24, chat_url: str = "https://chat.example/api",
                token_file: str | None = None, fax: str = "") -> str:
    """The policy alice's tests use; `fax`, a TOML list, adds the profile's fax formats on a
    line of its own after voicemail's (the lines after it then move down by one)."""
    fax_line = f"fax = {{ formats = {fax} }}\n" if fax else ""
    return f"""\
[organisation]
name = "Chat Example"
domain = "chat.example"
timezone = "Europe/Paris"

[delivery]
method = "lmtp"
address = "127.0.0.1:{lmtp_port}"

[channels.chat]
url = "{chat_url}"
token_file = "{token_file or work / 'chat.token'}"

[profiles.staff]
description = "voicemail as FLAC, told on the chat"
[profiles.staff.features]
voicemail = {{ formats = ["flac", "wav"] }}
{fax_line}notify = {{ voicemail = true, media = ["chat", "email"] }}

[users.alice]
name = "Alice Chat"
email = "{ALICE}"
profile = "staff"
extensions = ["201"]
chat_handle = "@alice"
"""


def test_check_takes_the_plugins_vocabulary_and_refuses_bad_settings(plugin_site, tmp_path):
    path = tmp_path / "policy.toml"
    path.write_text(policy_text(tmp_path))
    ok = mailcall(plugin_site, "check", str(path))
    assert ok.returncode == 0 and "policy OK" in ok.stdout, ok.stderr

    listed = {p["name"]: p for p in json.loads(mailcall(plugin_site, "plugins", "--json").stdout)}
    assert listed["chat"]["distribution"] == "mailcall-chat"
    assert listed["chat"]["version"] == "1.2.0"
    assert {"mailcall_notification_media", "mailcall_audio_encoders",
            "mailcall_fax_converters"} <= set(listed["chat"]["hooks"])

    # Without the plugin, the same policy names what nobody offers: refused, said where.
    alone = mailcall(None, "check", str(path))
    assert alone.returncode == 2
    assert (f"{path}:10: channels.chat: no installed plugin offers the medium 'chat'"
            in alone.stderr), alone.stderr
    assert (f"{path}:17: profiles.staff.features.voicemail.formats.0: 'flac' is not one of wav, "
            in alone.stderr), alone.stderr
    assert f"{path}:25: users.alice.chat_handle: unknown key 'chat_handle'" in alone.stderr

    # A fax format is the plugin's converter's: valid with it, refused (with its line) without.
    faxed = tmp_path / "faxed.toml"
    faxed.write_text(policy_text(tmp_path, fax='["png", "pdf"]'))
    ok = mailcall(plugin_site, "check", str(faxed))
    assert ok.returncode == 0 and "policy OK" in ok.stdout, ok.stderr
    alone = mailcall(None, "check", str(faxed))
    assert (f"{faxed}:18: profiles.staff.features.fax.formats.0: 'png' is not one of pdf, "
            "tiff: the fax formats the installed plugins offer") in alone.stderr, alone.stderr

    bad = (policy_text(tmp_path, chat_url="ftp://chat.example/api", token_file="chat.token")
           .replace('chat_handle = "@alice"', 'chat_handle = "alice"')
           .replace('token_file', 'timeout = 90\ntoken_file'))
    path.write_text(bad)
    refused = mailcall(plugin_site, "check", str(path))
    assert refused.returncode == 2, refused.stdout
    err = refused.stderr
    assert f"{path}:11: channels.chat.url: 'ftp://chat.example/api' must be an http:// or " \
           "https:// URL" in err, err
    assert f"{path}:12: channels.chat.timeout: must be between 0.5 and 30, not 90" in err, err
    assert f"{path}:13: channels.chat.token_file: 'chat.token' must be an absolute path" in err
    assert (f"{path}:26: users.alice.chat_handle: 'alice' is not a chat handle: write it with "
            'its @, e.g. "@alice"') in err, err

    # The plugin's own check, over the settings that passed, and its required key.
    path.write_text(policy_text(tmp_path, chat_url="http://chat.example/api"))
    clear = mailcall(plugin_site, "check", str(path))
    assert f"{path}:11: channels.chat.url: the API token would travel in clear" in clear.stderr
    path.write_text(policy_text(tmp_path).replace(f'token_file = "{tmp_path / "chat.token"}"\n',
                                                  ""))
    missing = mailcall(plugin_site, "check", str(path))
    assert ("users.alice.preferred_medium: is 'chat' but [channels] chat_token_file (or "
            "[channels.chat] token_file) is not set") in missing.stderr, missing.stderr


class ChatService(BaseHTTPRequestHandler):
    """The chat service's message API: keeps each POST, answers 201."""

    received: ClassVar[list[tuple[str, dict[str, str], dict]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, dict(self.headers), json.loads(body)))
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


class Served:
    """A running ``mailcall serve`` with the plugin installed: where its AGI listens, its log."""

    def __init__(self, agi_port: int, log: Path, spool: Path) -> None:
        self.agi_port, self.log, self.spool = agi_port, log, spool

    def log_text(self) -> str:
        return self.log.read_text()


@contextlib.contextmanager
def serving(site: Path, policy: Path, tmp_path: Path) -> Iterator[Served]:
    """``mailcall serve`` with `policy`, the plugin from `site`; stopped (SIGTERM) on exit."""
    agi_port = free_port()
    served = Served(agi_port, tmp_path / "serve.log", tmp_path / "spool")
    with served.log.open("w") as log:
        serve = subprocess.Popen(
            [str(MAILCALL), "serve", "--policy", str(policy), "--agi-listen",
             f"127.0.0.1:{agi_port}", "--spool-dir", str(served.spool),
             "--greetings-dir", str(tmp_path / "greetings")],
            stdout=log, stderr=subprocess.STDOUT, env=env_with(site))
    try:
        assert wait_for(lambda: listening(agi_port) or serve.poll() is not None, 60)
        assert serve.poll() is None, served.log_text()
        yield served
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        finally:
            if serve.poll() is None:
                serve.kill()


@contextlib.contextmanager
def chat_service() -> Iterator[ThreadingHTTPServer]:
    chat = ThreadingHTTPServer(("127.0.0.1", 0), ChatService)
    ChatService.received = []
    threading.Thread(target=chat.serve_forever, daemon=True).start()
    try:
        yield chat
    finally:
        chat.shutdown()


def test_a_voicemail_is_attached_as_flac_and_told_on_the_chat(plugin_site, dovecot_factory,
                                                               tmp_path):
    dovecot = dovecot_factory(users=[ALICE])
    (tmp_path / "chat.token").write_text(TOKEN + "\n")
    path = tmp_path / "policy.toml"
    with chat_service() as chat:
        path.write_text(policy_text(tmp_path, lmtp_port=dovecot.lmtp_port,
                                    chat_url=f"http://127.0.0.1:{chat.server_port}/v1/messages"))
        with serving(plugin_site, path, tmp_path) as served:
            call = Call(script="route", args=("201",), callerid="+33611111111",
                        calleridname="Bernard Client", uniqueid="1795887999.7",
                        dials=["noanswer"], record="hangup")
            asyncio.run(run_call(call, "127.0.0.1", served.agi_port, timeout=20))
            assert len(call.recorded_to) == 1, call.commands

            inbox = wait_for(lambda: dovecot.fetch_all(ALICE), 60)
            assert len(inbox) == 1, served.log_text() + dovecot.log_text()[-2000:]
            msg = email.message_from_bytes(inbox[0], policy=email_policy.default)
            assert msg["Message-Context"] == "voice-message"
            assert msg["From"].addresses[0].addr_spec == "mailcall@chat.example"  # Policy.sender
            audio = next(p for p in msg.walk() if p.get_content_maintype() == "audio")
            assert audio.get_content_type() == "audio/flac"
            assert audio.get_filename().endswith(".flac")
            info = soundfile.info(io.BytesIO(audio.get_content()))
            assert info.format == "FLAC" and abs(info.duration - 2.25) <= 0.05

            posted = wait_for(lambda: ChatService.received, 60)
            assert len(posted) == 1, served.log_text()
            where, headers, body = posted[0]
            assert where == "/v1/messages"
            assert headers["Authorization"] == f"Bearer {TOKEN}"
            assert body["to"] == "@alice"
            assert body["subject"] == "New message from Bernard Client +33611111111", body
            time.sleep(0.5)
            assert len(ChatService.received) == 1  # told once
    text = served.log_text()
    assert TOKEN not in text  # a secret never reaches the log
    assert "notified alice by chat" in text, text


PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FAX_CALL = "1795888111.9"


def test_a_fax_is_mailed_as_the_plugins_png_next_to_the_pdf(plugin_site, dovecot_factory,
                                                             tmp_path):
    """The fax AGI script, the spool and the delivery process run the plugin's converter
    (in a build process: it had to pickle) for the profile's ``fax.formats = ["png",
    "pdf"]``; the mail in Dovecot holds both, in that order."""
    dovecot = dovecot_factory(users=[ALICE])
    (tmp_path / "chat.token").write_text(TOKEN + "\n")
    path = tmp_path / "policy.toml"
    received = MEDIA / "fax-received-g3.tif"  # what ReceiveFAX wrote in the traced call
    with chat_service() as chat:
        path.write_text(policy_text(tmp_path, lmtp_port=dovecot.lmtp_port,
                                    chat_url=f"http://127.0.0.1:{chat.server_port}/v1/messages",
                                    fax='["png", "pdf"]'))
        with serving(plugin_site, path, tmp_path) as served:
            # The dialplan's MAILCALL_FAXFILE for this channel, written by ReceiveFAX, then
            # AGI(${MAILCALL_URL}/fax,${MAILCALL_FAXTO},${MAILCALL_FAXFILE}).
            tiff = served.spool / "rec" / f"fax-{FAX_CALL}.tif"
            tiff.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(received, tiff)
            call = Call(script="fax", args=("201", str(tiff)), callerid="+33140000299",
                        calleridname="Stock Inox", uniqueid=FAX_CALL,
                        variables=dict(RECORDED.fax_vars))
            asyncio.run(run_call(call, "127.0.0.1", served.agi_port, timeout=20))
            assert call.variables_set.get("MAILCALL_STATUS") == "FAX", (call.commands,
                                                                        served.log_text())

            inbox = wait_for(lambda: dovecot.fetch_all(ALICE), 60)
            assert len(inbox) == 1, served.log_text() + dovecot.log_text()[-2000:]
    msg = email.message_from_bytes(inbox[0], policy=email_policy.default)
    assert msg["Message-Context"] == "fax-message"
    parts = list(msg.iter_attachments())
    assert [p.get_content_type() for p in parts] == ["image/png", "application/pdf"], \
        [(p.get_content_type(), p.get_filename()) for p in parts]
    png, pdf = parts
    assert png.get_filename().endswith(".png") and pdf.get_filename().endswith(".pdf")
    data = png.get_content()
    assert data[:8] == PNG_MAGIC
    with Image.open(io.BytesIO(data)) as image, Image.open(received) as fax:
        assert image.format == "PNG" and image.size == fax.size  # 1728 wide: the whole page
        assert image.tobytes() == fax.convert("1").tobytes()  # every pixel of the page
    assert pdf.get_content()[:5] == b"%PDF-"
    assert len(pypdf.PdfReader(io.BytesIO(pdf.get_content())).pages) == 1
    assert "Traceback" not in served.log_text(), served.log_text()
