"""Folders Asterisk writes into, shared with mailcall through the asterisk group.

Asterisk (user ``asterisk``) records into ``{spool_dir}/rec`` and the users'
greeting folders; mailcall (user ``mailcall``) reads and renames there. Under
the shipped unit's ``UMask=0027`` a folder mailcall makes would be 2750 and
Asterisk could not write: the modes are therefore set explicitly, whatever the
umask (``docs/asterisk.md`` section 2).

Where a user's greeting lives, and how a new one replaces the old, is written
here once: the voicemail handler plays it, the greeting handler and the phone
menu record it, the greetings plugin generates the spoken default beside it.
Each of them asking its own way put the generated greeting where the player did
not look, or let an id that is not one path component reach the disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from mailcall.core.policy.model import GREETING_KINDS
from mailcall.core.text import display_text

from .safety import safe_component

log = logging.getLogger("mailcall.agi.folders")

WAV_HEADER = 44
"""Bytes of the header Asterisk writes at the start of a ``wav`` recording: a file no
longer than this holds no sound (the caller hung up or said nothing)."""
SAMPLES_PER_MS = 8
"""RECORD FILE ``endpos`` counts samples; Asterisk's ``wav`` is 8 kHz, 16-bit mono."""



def recordings_folder(spool_dir: Path | str) -> Path:
    """``{spool_dir}/rec``: where Asterisk records messages and receives faxes.

    The one name of the folder for all that write there (the dialplan's ReceiveFAX,
    the voicemail and fax handlers, the phone menu's replies and forwards) and for the
    spool, which removes a recording from there once it holds its own copy. Only the
    path: who writes makes it with :func:`shared_folder`.
    """
    return Path(spool_dir) / "rec"


def file_size(path: Path) -> int:
    """Bytes in the file Asterisk recorded at `path`; -1 when there is none (or it cannot
    be read): a recording that never started is then told from an empty one by callers
    comparing with :data:`WAV_HEADER`."""
    try:
        return path.stat().st_size
    except OSError:
        return -1


def recorded_ms(size: int) -> int:
    """Milliseconds of sound in an Asterisk ``wav`` of `size` bytes (8 kHz, 16-bit mono
    after the header): the length when RECORD FILE did not say (a lost connection) or
    said less than the file holds; 0 for a file no longer than the header."""
    return max(0, (size - WAV_HEADER) // (2 * SAMPLES_PER_MS))


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


class GreetingPathRefused(ValueError):
    """A user id or greeting kind that is not one plain path component of the greetings folder.

    The policy's user ids always are one (lower-case letters, digits, ``.``, ``_``,
    ``-``); such an id comes from a hand-built policy or a plugin. It is refused, not
    cleaned: a cleaned id could name another user's folder, and that user's greeting
    would be played or overwritten.
    """


def greeting_path(greetings_dir: Path | str, user_id: str, kind: str) -> Path:
    """``{greetings_dir}/{user}/{kind}`` without extension (Asterisk picks the format).

    The one rule for where a user's own greeting lives, for the player, the
    recorders and the generator alike. `user_id` must be what
    :func:`~mailcall.agi.safety.safe_component` leaves unchanged and `kind` one of
    ``GREETING_KINDS``; anything else raises :class:`GreetingPathRefused`.
    """
    if kind not in GREETING_KINDS:
        raise GreetingPathRefused(
            f"greeting kind {display_text(repr(kind), 80)} is not one of "
            f"{', '.join(GREETING_KINDS)}: no greeting file is read or written for it")
    if not isinstance(user_id, str) or not user_id or safe_component(user_id, "") != user_id:
        raise GreetingPathRefused(
            f"user id {display_text(repr(user_id), 80)} cannot name a folder under "
            f"{greetings_dir}: only letters, digits, '.', '_' and '-', not starting with "
            "'.' (as the policy's [users] ids are); fix the plugin or the code that made "
            "this user")
    return Path(greetings_dir) / user_id / kind


def generated_greeting_path(greetings_dir: Path | str, user_id: str, kind: str) -> Path:
    """Where the greetings plugin puts the spoken default of :func:`greeting_path`
    (``generated-{kind}``, without extension), which the player tries second."""
    personal = greeting_path(greetings_dir, user_id, kind)
    return personal.with_name("generated-" + personal.name)


def prepare_recording(final: Path, uniqueid: str) -> Path:
    """The temporary name Asterisk records a new greeting `final` under (no extension).

    In `final`'s own folder, made group-writable (:func:`shared_folder`), so that
    :func:`commit_recording` is a rename that never crosses filesystems; hidden
    (a leading dot) and named after the call's `uniqueid` (made safe), so two
    calls recording at once never share it and the player never picks it up.
    """
    shared_folder(final.parent)
    return final.with_name(f".{final.name}.tmp-{safe_component(uniqueid)}")


def commit_recording(tmp: Path, final: Path) -> bool:
    """Rename the ``wav`` recorded under `tmp` over `final`'s; False when nothing was kept.

    One ``os.replace``: a call arriving meanwhile plays the old greeting or the
    new one, never half a file. A recording holding no sound (no longer than
    :data:`WAV_HEADER`) is removed and the old greeting stays.
    """
    tmp_wav = tmp.with_name(tmp.name + ".wav")
    try:
        if tmp_wav.stat().st_size <= WAV_HEADER:
            tmp_wav.unlink()
            return False
        os.replace(tmp_wav, final.with_name(final.name + ".wav"))
        return True
    except FileNotFoundError:
        return False


def discard_recording(tmp: Path) -> None:
    """Remove what was recorded under `tmp` (a hang-up, a lost connection, mailcall
    stopping): nothing else would ever clean the hidden file up."""
    tmp.with_name(tmp.name + ".wav").unlink(missing_ok=True)
