"""The spool's durable writes: write to ``tmp/``, fsync the file, rename into place,
fsync the directory, so that a crash leaves either the old file or the new one.

The recording copy is here too because it is the one write that reads a file
mailcall does not own: ``rec/`` is writable by Asterisk, so nothing there is
followed through a link or taken unless it is a regular file.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
from pathlib import Path

from .wav_header import complete_wav_header

log = logging.getLogger("mailcall.deposit.spool")


class NotARegularFile(OSError):
    """A recording path that names a device, a folder or a pipe."""


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(root: Path, target: Path, data: bytes) -> None:
    """Write `data` to `target` through `root`/tmp: fsync, rename, fsync the folder."""
    tmp = root / "tmp" / f"{target.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)


def copy_atomic(root: Path, source: Path, target: Path) -> bool:
    """Copy `source` to `target` durably, through `root`/tmp; True when Asterisk was
    still writing it (its WAV header is then completed from its length)."""
    unfinished = False
    tmp = root / "tmp" / f"{target.name}.{os.getpid()}.tmp"
    # The recordings folder is writable by Asterisk: a link planted there must never
    # make mailcall mail out a file it can read. No link is followed, and what is
    # opened must be a regular file (checked on the open descriptor, not the name).
    fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise NotARegularFile(f"{source} is not a regular file")
    with os.fdopen(fd, "rb") as src, open(tmp, "w+b") as dst:
        # Copied by the kernel (sendfile; shutil's fallback where that is refused), not
        # through Python buffers: this runs in the FastAGI process, where copies through
        # bytes objects hold up call routing (docs/deposit.md, "Off the loop").
        try:
            size = os.fstat(src.fileno()).st_size
            offset = 0
            while offset < size:
                sent = os.sendfile(dst.fileno(), src.fileno(), offset, size - offset)
                if sent == 0:
                    break
                offset += sent
        except OSError:
            src.seek(0)
            dst.seek(0)
            dst.truncate()
            shutil.copyfileobj(src, dst, 1 << 20)
        if target.suffix == ".wav":
            dst.flush()
            if complete_wav_header(dst.fileno()):
                unfinished = True
                log.warning("recording %s was still being written by Asterisk when it was "
                            "deposited (mailcall stopping, or the call's connection lost): "
                            "its header was completed from its length, %d bytes; the file "
                            "is left where it is", source, os.fstat(dst.fileno()).st_size)
        os.fsync(dst.fileno())
    os.replace(tmp, target)
    fsync_dir(target.parent)
    return unfinished
