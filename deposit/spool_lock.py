"""One ``mailcall serve`` per spool: the lock held by ``flock`` on ``serve.lock``.

A second server would run :meth:`mailcall.deposit.spool.Spool.recover`, which
empties ``tmp/``, under the first one's accepts, and both would deliver the
same records. The kernel drops the lock with the process, even after SIGKILL,
so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

LOCK_FILE = "serve.lock"


class SpoolBusy(Exception):
    """Another process serves this spool (see :meth:`Spool.lock`)."""


def lock_spool(root: Path) -> int:
    """Take the spool at `root` for this process; the returned descriptor holds it
    until closed.

    Raises :class:`SpoolBusy` naming the process that holds it. The file is the
    mailcall user's alone (0600, never through a link): the spool root is
    readable by Asterisk's group, and nobody else may hold, empty or replace it.
    """
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise SpoolBusy(
                f"{path} is not a regular file owned by this user (uid {os.geteuid()}): "
                f"remove it (rm {path}) and make {root} writable by mailcall only "
                "(mode 2750, docs/asterisk.md section 2)")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 16, 0).split(b"\n", 1)[0]
            pid = holder.decode() if holder.isdigit() else "unknown"
            raise SpoolBusy(
                f"the deposit spool {root} is already used by another 'mailcall "
                f"serve' (pid {pid}, see {path}); two would deliver the same voicemails "
                "twice. Stop that one first (systemctl stop mailcall), or give this one "
                "its own --spool-dir") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd
