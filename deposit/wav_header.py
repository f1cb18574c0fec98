"""Completing the header of a WAV file Asterisk had not finished writing.

Asterisk's ``format_wav`` writes the RIFF and ``data`` chunk sizes only when
it closes the file (``wav_close`` → ``update_header``); until then both say
0. A recording copied while RECORD FILE still runs (mailcall stopping, or the
FastAGI connection lost mid-message) therefore reads as "no audio" although it
holds the caller's words. The spool's own copy gets its sizes from its length,
so the message is delivered with what was said.
"""

from __future__ import annotations

import os
import struct

_RIFF = struct.Struct("<4sI4s")
_CHUNK = struct.Struct("<4sI")
_MAX_CHUNKS = 16


def complete_wav_header(fd: int) -> bool:
    """Make the sizes of the WAV open on `fd` (read/write) match its length; True if changed.

    Leaves anything that is not a RIFF/WAVE file with a ``data`` chunk alone:
    the recording checks downstream report those for what they are.
    """
    length = os.fstat(fd).st_size
    head = os.pread(fd, _RIFF.size, 0)
    if len(head) < _RIFF.size:
        return False
    riff, riff_size, wave = _RIFF.unpack(head)
    if riff != b"RIFF" or wave != b"WAVE":
        return False
    offset = _RIFF.size
    block_align = 1
    for _ in range(_MAX_CHUNKS):
        raw = os.pread(fd, _CHUNK.size, offset)
        if len(raw) < _CHUNK.size:
            return False
        name, size = _CHUNK.unpack(raw)
        body = offset + _CHUNK.size
        if name == b"fmt ":
            fmt = os.pread(fd, 16, body)
            if len(fmt) == 16:
                block_align = max(1, struct.unpack_from("<H", fmt, 12)[0])
        elif name == b"data":
            available = length - body
            available -= available % block_align
            changed = False
            if size == 0 or size > available:
                os.pwrite(fd, struct.pack("<I", available), offset + 4)
                changed = True
                size = available
            if riff_size == 0 or riff_size > length - 8:
                os.pwrite(fd, struct.pack("<I", body - 8 + size), 4)
                changed = True
            return changed
        offset = body + size + (size & 1)
    return False
