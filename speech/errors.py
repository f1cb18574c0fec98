"""What can go wrong when mail is read aloud, as types the menu can tell apart."""

from __future__ import annotations


class SpeechError(Exception):
    """Base class: the text cannot be spoken."""


class SpeechUnavailable(SpeechError):
    """No speech engine can be used in this process (library missing, no plugin)."""


class NoVoice(SpeechError):
    """Neither the message's language nor the fallback has a voice."""


class SpeechFailed(SpeechError):
    """The engine failed on one sentence."""
