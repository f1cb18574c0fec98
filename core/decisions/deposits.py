"""What the phone side hands to the mail side: a voicemail or a fax to deposit.

These records cross the boundary between the FastAGI handlers and the durable
spool, and are written to disk by the spool, so they hold only plain values
(strings, ints, aware datetimes) and never a live object.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class VoiceMessage:
    call_id: str
    """Asterisk's agi_uniqueid: the Message-ID is derived from it, so a retry never duplicates."""
    mailbox: str
    """User id whose mailbox takes the message."""
    caller_number: str
    caller_name: str
    at: datetime
    reason: str
    """Why the call went to voicemail: busy, no-answer, unavailable, absent, off-hours, direct."""
    recording: str | None
    """Path of the WAV that RECORD FILE wrote (None or missing: a "missed call" message)."""
    duration_ms: int | None = None
    ended_by: str = ""
    """"dtmf", "hangup", "timeout" or "" when unknown."""


@dataclass(frozen=True, slots=True)
class FaxMessage:
    call_id: str
    mailbox: str
    caller_number: str
    caller_name: str
    at: datetime
    status: str
    """FAXSTATUS as Asterisk set it: SUCCESS, FAILED, ..."""
    error: str
    pages: int | None
    station_id: str
    tiff: str | None
    bitrate: int | None = None
    resolution: str = ""


Deposit = VoiceMessage | FaxMessage
