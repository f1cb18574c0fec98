"""What the live tests read back: audio and PDF parts of a mail, Asterisk's log lines."""

from __future__ import annotations

import io
import re
from email.message import EmailMessage

import numpy as np
import soundfile
from pypdf import PdfReader

from tests.support.sipp import AwaitHangup, Dtmf, Pause, Speak, Step

SKIP_GAP_MS = 1500
"""Silence after the '#' that skips a greeting and before speaking: an RFC 4733
event's last packets arriving once RECORD FILE has begun would end it at once."""


def leave_message(speech, *, skip_after_ms: int = 1000, end: str = "#") -> list[Step]:
    """A caller who skips the greeting with '#', speaks `speech`, then presses `end`
    (or hangs up when `end` is "") and lets Asterisk hang up."""
    steps: list[Step] = [Pause(skip_after_ms), Dtmf("#"), Pause(SKIP_GAP_MS), Speak(speech, 300)]
    if end:
        steps += [Dtmf(end), AwaitHangup(20000)]
    return steps


def audio(msg: EmailMessage) -> tuple[str, float, float]:
    """(content type, duration in seconds, RMS level 0..1) of the mail's one audio part."""
    parts = [p for p in msg.walk() if p.get_content_maintype() == "audio"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.walk()]
    data = parts[0].get_content()
    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32")
    rms = float(np.sqrt(np.mean(np.square(samples)))) if len(samples) else 0.0
    return parts[0].get_content_type(), len(samples) / rate, rms


def assert_speech_length(seconds: float, spoken: float) -> None:
    """The recording lasts as long as the caller spoke: sipp sends no RTP while it
    pauses, and Asterisk records the frames it gets; a '#' at the end takes 0.2 s
    back (res_agi rewinds the key press out of the file)."""
    assert spoken - 0.6 <= seconds <= spoken + 0.4, (seconds, spoken)


def pdf_pages(msg: EmailMessage) -> int:
    parts = [p for p in msg.walk() if p.get_content_type() == "application/pdf"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.walk()]
    return len(PdfReader(io.BytesIO(parts[0].get_content())).pages)


def body_text(msg: EmailMessage) -> str:
    part = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    return part.get_content()


def agi_rx(log: str) -> list[str]:
    """The AGI commands mailcall sent, as Asterisk logged them (agi set debug on)."""
    return re.findall(r"AGI Rx << (.*)", log)


def agi_tx(log: str) -> list[str]:
    """What Asterisk answered (and the environment it sent)."""
    return re.findall(r"AGI Tx >> (.*)", log)


def played(log: str) -> list[tuple[str, str]]:
    """(file, language) of every prompt Asterisk played."""
    return re.findall(r"Playing '([^']+)' .*?\(language '([^']*)'\)", log)


def executed(log: str, app: str) -> list[str]:
    """Data of every dialplan step running `app` (``Executing [...] App("chan", "data")``)."""
    return re.findall(rf'Executing \[[^\]]*\] {app}\("[^"]*", "(.*)"\) in new stack', log)
