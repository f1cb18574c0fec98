"""Audio for the phone: anything a mailbox holds, made into what Asterisk plays as is.

Asterisk's ``format_sln`` plays raw 8 kHz signed 16-bit little-endian mono
(``.sln``) with no transcoding on a telephone channel, so every file handed to
STREAM FILE by the mailbox menu is one of those: voicemail attachments decoded
by :func:`decode_to_sln`, speech chunks written by :func:`write_sln`.
"""

from mailcall.playback.decode import MAX_BYTES, MAX_SECONDS, UnplayableAudio, decode_to_sln
from mailcall.playback.pcm import TELEPHONE_RATE, to_telephone, write_sln

__all__ = [
    "MAX_BYTES",
    "MAX_SECONDS",
    "TELEPHONE_RATE",
    "UnplayableAudio",
    "decode_to_sln",
    "to_telephone",
    "write_sln",
]
