"""A chat notification medium, a FLAC voicemail format and a PNG fax format, as a third
party writes them.

Everything mailcall needs is declared here, through the public contracts
(``mailcall.core.contracts``): the medium's name, its ``[channels.chat]``
settings (the chat service's URL and a file holding its API token), the
per-user key holding each user's chat handle, its own check, and which failures
are worth a retry.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import soundfile

from mailcall.core.contracts import Medium, Setting, UserKey
from mailcall.core.hookspecs import hookimpl
from mailcall.notifications.channel import PermanentChannelError, TemporaryChannelError


def _handle_problem(handle: str) -> str | None:
    if not handle.startswith("@") or len(handle) < 2 or any(c.isspace() for c in handle):
        return f"'{handle}' is not a chat handle: write it with its @, e.g. \"@alice\""
    return None


def _settings_problems(settings) -> list[str]:
    url = settings.get("url", "")
    if url.startswith("http://") and not url.startswith(("http://127.", "http://localhost")):
        return ["url: the API token would travel in clear: use https:// (plain http only "
                "to this machine)"]
    return []


CHAT = Medium(
    "chat",
    address=UserKey(Setting("chat_handle", validate=_handle_problem,
                            help="the user's handle on the chat service, e.g. @alice")),
    settings=(
        Setting("url", kind="url", required=True, help="the chat service's message API"),
        Setting("token_file", kind="path", required=True,
                help="file holding the API token (never the token itself)"),
        Setting("timeout", kind="number", default=5.0, low=0.5, high=30),
    ),
    checks=_settings_problems,
    description="a message to the user's chat handle",
)


class ChatChannel:
    """Posts ``{"to": handle, "text": ...}`` with the token as a bearer header."""

    medium = "chat"
    temporary_errors: ClassVar[tuple[type[BaseException], ...]] = (TemporaryChannelError,)

    def __init__(self, runtime) -> None:
        self.runtime = runtime

    async def send(self, notification, subject: str, text: str) -> str | None:
        settings = self.runtime.policy.channels.of("chat")
        try:
            token = Path(settings["token_file"]).read_text().strip()
        except OSError as exc:
            raise PermanentChannelError(
                f"cannot read [channels.chat] token_file: {exc.strerror}") from None
        body = json.dumps({"to": notification.address, "subject": subject,
                           "text": text}).encode()
        request = urllib.request.Request(  # noqa: S310 - http(s) checked by the policy
            settings["url"], data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        loop = asyncio.get_running_loop()
        try:
            status = await loop.run_in_executor(None, _post, request, settings["timeout"])
        except urllib.error.HTTPError as exc:
            if exc.code >= 500:
                raise TemporaryChannelError(f"chat service answered HTTP {exc.code}") from None
            raise PermanentChannelError(f"chat service refused: HTTP {exc.code}") from None
        except OSError as exc:
            raise TemporaryChannelError(f"chat service unreachable: {exc}") from None
        return f"chat service answered {status}"


def _post(request: urllib.request.Request, timeout: float) -> int:
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return int(response.status)


@dataclass(frozen=True, slots=True)
class FlacEncoder:
    """Lossless, about half the size of the WAV: picklable, as encoders must be."""

    format: str = "flac"
    mime_type: str = "audio/flac"
    extension: str = "flac"

    def encode(self, wav_path: str, out_path: str) -> None:
        data, rate = soundfile.read(wav_path, dtype="int16", always_2d=True)
        soundfile.write(out_path, data, rate, format="FLAC", subtype="PCM_16")


@hookimpl
def mailcall_notification_media():
    return [CHAT]


@hookimpl
def mailcall_notification_channels(runtime):
    return [ChatChannel(runtime)]


@dataclass(frozen=True, slots=True)
class PngFaxConverter:
    """The fax's first page as an image a phone shows at once (a PNG holds one page; a
    profile names "pdf" too for the others): picklable, as converters must be."""

    format: str = "png"
    mime_type: str = "image/png"
    extension: str = "png"

    def convert(self, tiff_path: str, out_path: str) -> None:
        from PIL import Image

        with Image.open(tiff_path) as fax:
            fax.convert("1").save(out_path, format="PNG")  # the first page


@hookimpl
def mailcall_audio_encoders():
    return [FlacEncoder()]


@hookimpl
def mailcall_fax_converters():
    return [PngFaxConverter()]
