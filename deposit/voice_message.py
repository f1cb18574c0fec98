"""A voicemail as a standard Internet voice message (RFC 3458, RFC 3803, RFC 3801 spirit).

The message is ``multipart/mixed``: a ``text/plain`` part saying who called,
when, for how long and why the call went to voicemail, then the audio part with
``Content-Duration``. ``Message-Context: voice-message`` lets mail clients
recognise it without guessing from the subject; its ``Mailcall-Deposit`` token
lets mailcall's Sieve rules tell it from a forgery.

Building is *blocking* (it encodes audio) and runs in the spool worker's
process pool. It never raises for bad input from the phone side: a missing,
empty or unreadable recording gives a "missed call" message instead, and a
failed conversion falls back to the WAV as recorded, so the user always learns
that someone called.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, tzinfo
from email.message import EmailMessage
from pathlib import Path

from mailcall.core.contracts import AudioEncoder
from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.text import display_text

from . import wording
from .audio import RecordingProblem, WavEncoder, probe
from .headers import MAX_NAME, clean_number, message_id, set_common_headers, tel_uri

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Origin:
    """Organisation-wide facts a message needs: who signs it and the local clock."""

    sender: str
    """Envelope and From address of generated messages (``Policy.sender``)."""
    domain: str
    timezone: tzinfo
    sender_name: str = "mailcall"


def caller_label(language: str, name: str, number: str) -> str:
    if name and number:
        return f"{name} ({number})"
    return name or number or wording.text(language, "unknown_caller")


def caller_lines(language: str, name: str, number: str, domain: str) -> list[str]:
    lines = [wording.text(language, "caller", who=caller_label(language, name, number))]
    uri = tel_uri(number, domain)
    if uri:
        lines.append(wording.text(language, "call_back", uri=f"<{uri}>"))
    return lines


def build_voice_message(
    deposit: VoiceMessage,
    plan: DepositPlan,
    origin: Origin,
    *,
    recording: str | None,
    encoder: AudioEncoder | None,
    workdir: str | os.PathLike,
    key: bytes,
    msgid: str | None = None,
) -> EmailMessage:
    """The complete message for `deposit`; `recording` is the spool's copy of the WAV,
    `key` the deposit key that seals it (:mod:`mailcall.deposit.seal`), `msgid` the
    Message-ID an earlier attempt gave it (a rebuild keeps it, so dedupe still works)."""
    language = plan.language
    name = display_text(deposit.caller_name, MAX_NAME)
    number = clean_number(deposit.caller_number)
    local = deposit.at.astimezone(origin.timezone)
    who = caller_label(language, name, number)

    problem: str | None = None
    try:
        seconds = probe(recording)
    except RecordingProblem as exc:
        log.warning("voicemail %s: %s; sending a missed-call message", deposit.call_id, exc)
        problem = exc.kind
        seconds = 0.0

    attachment: tuple[bytes, str, str] | None = None
    note: str | None = None
    if problem is None:
        assert recording is not None
        attachment, note = _encode(deposit, recording, encoder, Path(workdir), local, number)

    msg = EmailMessage()
    lines = [
        wording.text(language, "missed_intro" if problem else "voice_intro"),
        "",
        *caller_lines(language, name, number, origin.domain),
        wording.text(language, "when", when=wording.when(language, local)),
    ]
    if problem is None:
        lines.append(
            wording.text(language, "duration", duration=wording.duration(language, seconds))
        )
    lines.append(wording.text(language, "why", reason=wording.reason(language, deposit.reason)))
    lines.append("")
    if problem:
        lines.append(wording.text(language, "missed_why", problem=wording.text(language, problem)))
    else:
        assert attachment is not None
        lines.append(wording.text(language, "voice_attached", fmt=attachment[2]))
        if note:
            lines.append(wording.text(language, note))
    msg.set_content(
        "\n".join(lines) + "\n", subtype="plain", charset="utf-8", cte="quoted-printable"
    )
    if problem:
        subject = wording.text(language, "missed_subject", who=who)
    else:
        subject = wording.text(
            language, "voice_subject", who=who, duration=wording.duration(language, seconds)
        )
    set_common_headers(
        msg,
        context="voice-message",
        subject=subject,
        sender=origin.sender,
        sender_name=name or number or origin.sender_name,
        recipient=plan.recipient,
        recipient_name=plan.display_name,
        msgid=msgid or message_id("voice", deposit.mailbox, deposit.call_id, origin.domain,
                                  key=key),
        date=local,
        key=key,
    )
    if attachment is not None:
        data, filename, fmt = attachment
        # The encoder says its MIME type (a plugin's format too); WAV is the fallback.
        mime = encoder.mime_type if encoder is not None and fmt == encoder.format else "audio/wav"
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
        part = msg.get_payload()[-1]
        del part["MIME-Version"]  # the stdlib adds it to each part; only the top needs it
        if fmt == "opus":
            part.set_param("codecs", "opus")
        part["Content-Duration"] = str(max(1, round(seconds)))
    return msg


def _encode(
    deposit: VoiceMessage,
    recording: str,
    encoder: AudioEncoder | None,
    workdir: Path,
    local: datetime,
    number: str,
) -> tuple[tuple[bytes, str, str], str | None]:
    """(data, filename, format) of the attachment, and a note key if we fell back to WAV."""
    stem = f"voicemail-{local:%Y%m%d-%H%M%S}" + (f"-{number.lstrip('+')}" if number else "")
    stem = display_text(stem, 60).replace(" ", "")
    note = None
    if encoder is not None and encoder.format != "wav":
        out = workdir / f"{stem}.{encoder.extension}"
        try:
            encoder.encode(recording, str(out))
            return (out.read_bytes(), out.name, encoder.format), None
        except Exception:
            log.exception(
                "voicemail %s: %s encoding failed; attaching the WAV as recorded",
                deposit.call_id,
                encoder.format,
            )
            note = "encode_failed"
    wav = WavEncoder()
    return (Path(recording).read_bytes(), f"{stem}.{wav.extension}", "wav"), note
