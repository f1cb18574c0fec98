"""Which part of a message is its audio, and what type to play it as.

A voicemail filed by mailcall says ``audio/ogg``; one from elsewhere (another
voicemail system, a forwarded mail) may send its audio as
``application/octet-stream`` with only a file name to go by.
"""

from __future__ import annotations

from .structure import Part

AUDIO_NAMES = (".wav", ".opus", ".ogg", ".oga", ".mp3", ".gsm", ".flac")


def audio_part(structure: list[Part]) -> Part | None:
    """The first audio part, else the first octet-stream whose name says audio."""
    for part in structure:
        if part.maintype == "audio":
            return part
    for part in structure:
        if part.mime_type == "application/octet-stream" and \
                part.filename.lower().endswith(AUDIO_NAMES):
            return part
    return None


def guess_audio_type(filename: str) -> str:
    """The type of an octet-stream audio part from its name; Ogg when it says nothing."""
    name = filename.lower()
    for suffix, mime in ((".wav", "audio/wav"), (".mp3", "audio/mpeg"), (".flac", "audio/flac"),
                         (".gsm", "audio/gsm")):
        if name.endswith(suffix):
            return mime
    return "audio/ogg"
