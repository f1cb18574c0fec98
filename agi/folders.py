"""Folders Asterisk writes into, shared with mailcall through the asterisk group.

Asterisk (user ``asterisk``) records into ``{spool_dir}/rec`` and the users'
greeting folders; mailcall (user ``mailcall``) reads and renames there. Under
the shipped unit's ``UMask=0027`` a folder mailcall makes would be 2750 and
Asterisk could not write: the modes are therefore set explicitly, whatever the
umask (``docs/asterisk.md`` section 2).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("mailcall.agi.folders")

SHARED_DIR_MODE = 0o2770
"""Folders Asterisk writes into: owner and group (asterisk) rwx, setgid so what is
created inside keeps the group (``docs/asterisk.md`` section 2)."""
TRAVERSE_DIR_MODE = 0o2750
"""Their parents, when mailcall makes them: the group may pass, not write."""


def shared_folder(path: Path) -> Path:
    """Make `path` a folder Asterisk's group can write, whatever the umask.

    `path` itself, if made here, is chmod-ed to :data:`SHARED_DIR_MODE`; an
    existing one missing group rwx (made by an older mailcall under
    ``UMask=0027``) gets it added. Missing parents are made
    :data:`TRAVERSE_DIR_MODE`: Asterisk's group passes through them but cannot
    write there (the spool root holds mailcall's own state and its lock). When
    a chmod is not allowed (not mailcall's folder), the problem is logged with
    the command that fixes it, and the caller carries on: Asterisk will then
    fail to record there, which the caller reports.
    """
    missing = []
    probe = path
    while not probe.is_dir() and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    path.mkdir(parents=True, exist_ok=True)
    for folder in missing:
        if folder == path:
            _add_group_rwx(folder, os.stat(folder).st_mode, created=True)
        else:
            with contextlib.suppress(OSError):
                os.chmod(folder, TRAVERSE_DIR_MODE)
    if not missing:
        mode = os.stat(path).st_mode
        if mode & 0o070 != 0o070:
            _add_group_rwx(path, mode, created=False)
    return path


def _add_group_rwx(folder: Path, mode: int, *, created: bool) -> None:
    new = SHARED_DIR_MODE if created else stat.S_IMODE(mode) | (SHARED_DIR_MODE & 0o2070)
    try:
        os.chmod(folder, new)
    except OSError as exc:
        log.error("%s is mode %o: Asterisk (group) cannot write there and chmod failed (%s). "
                  "Fix: chgrp asterisk %s && chmod 2770 %s (docs/asterisk.md, section 2)",
                  folder, stat.S_IMODE(mode), exc.strerror, folder, folder)
        return
    if not created:
        log.warning("%s was mode %o, Asterisk (group) could not write there: now %o",
                    folder, stat.S_IMODE(mode), new)
