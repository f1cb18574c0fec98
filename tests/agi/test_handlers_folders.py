"""Folders Asterisk writes into are group-writable (2770) whatever mailcall's umask.

Review finding (issue #3): the shipped systemd unit sets ``UMask=0027``, so a
plain ``mkdir`` made ``greetings/<user>/`` 2750 and Asterisk's RECORD FILE of a
personal greeting failed. Tests run as root, where nothing fails for lack of a
permission, so these tests check the mode bits themselves, under that umask.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

from mailcall.agi.folders import (
    SHARED_DIR_MODE,
    WAV_HEADER,
    file_size,
    recorded_ms,
    recordings_folder,
    shared_folder,
)
from mailcall.core.policy.load import compile_text
from mailcall.plugins.greetings import generate_greetings

from .fake_asterisk import Call
from .harness import OFFICE_HOURS, POLICY, make_runtime
from .support import MEDIA
from .test_handlers import drive

SYSTEMD_UMASK = 0o027  # contrib/systemd/mailcall.service


@contextlib.contextmanager
def umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_shared_dir_mode_is_what_the_docs_install():
    assert SHARED_DIR_MODE == 0o2770  # docs/asterisk.md section 2: install -d -m 2770


def test_greeting_folder_made_by_a_phone_recording_is_group_writable(tmp_path):
    rt = make_runtime(tmp_path)
    greetings = tmp_path / "greetings"
    greetings.mkdir(mode=0o750)
    os.chmod(greetings, 0o2770)  # noqa: S103 - as docs/asterisk.md section 2 does
    with umask(SYSTEMD_UMASK):
        call = drive(rt, Call(script="greeting", args=("alice",), get_data=["2468", "1"]))
    assert call.variables_set["MAILCALL_STATUS"] == "GREETING_SAVED"
    assert mode(greetings / "alice") == 0o2770
    assert (greetings / "alice" / "unavailable.wav").is_file()


def test_recording_folder_made_by_voicemail_is_group_writable(tmp_path):
    rt = make_runtime(tmp_path)
    with umask(SYSTEMD_UMASK):
        call = drive(rt, Call(args=("203",), dials=["busy"]))
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    assert mode(tmp_path / "spool" / "rec") == 0o2770
    # Made here too: Asterisk's group may pass through to rec/, not write beside it
    # (the spool root holds mailcall's records and its serve.lock).
    assert mode(tmp_path / "spool") == 0o2750


class _Speaker:
    name = "fake"

    def synthesize(self, text: str, language: str, path: str) -> bool:
        Path(path).write_bytes((MEDIA / "voicemail-dtmf-end.wav").read_bytes())
        return True


def test_greeting_folder_made_by_the_generator_is_group_writable(tmp_path):
    policy = compile_text(POLICY, name="test-policy.toml")
    with umask(SYSTEMD_UMASK):
        written = generate_greetings(policy, [_Speaker()], tmp_path / "greetings", OFFICE_HOURS)
    assert written
    for user in policy.users:
        assert mode(tmp_path / "greetings" / user) == 0o2770, user


def test_folder_left_2750_by_an_older_mailcall_is_repaired(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mailcall.agi.voicemail")
    folder = tmp_path / "greetings" / "alice"
    folder.mkdir(parents=True)
    os.chmod(folder, 0o2750)  # noqa: S103 - what an older mailcall made
    with umask(SYSTEMD_UMASK):
        shared_folder(folder)
    assert mode(folder) == 0o2770
    assert "could not write" in caplog.text and str(folder) in caplog.text


def test_existing_writable_folder_is_left_alone(tmp_path, caplog):
    folder = tmp_path / "rec"
    folder.mkdir()
    os.chmod(folder, 0o775)  # noqa: S103 - an admin's choice, group-writable
    shared_folder(folder)
    assert mode(folder) == 0o775
    assert caplog.text == ""


def test_a_folder_mailcall_may_not_chmod_is_reported_with_the_fix(tmp_path, caplog, monkeypatch):
    folder = tmp_path / "rec"
    folder.mkdir()
    os.chmod(folder, 0o755)  # noqa: S103 - not group-writable

    def refuse(path, mode):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "chmod", refuse)
    shared_folder(folder)  # reported, not raised: the call goes on and reports its outcome
    assert "chmod 2770" in caplog.text and str(folder) in caplog.text


def test_one_recordings_folder_for_the_handlers_the_menu_and_the_spool(tmp_path):
    """``{spool_dir}/rec`` is named in agi/folders.py only; the spool's release of a
    recording and the fax handler's expected file both use it."""
    from mailcall.agi.handlers.fax import expected_fax_file
    from mailcall.deposit.spool import Spool

    rt = make_runtime(tmp_path)
    rec = recordings_folder(rt.setting("spool_dir"))
    assert rec == Path(rt.setting("spool_dir")) / "rec"
    assert expected_fax_file(rt, "1795887828.27") == rec / "fax-1795887828.27.tif"
    shared_folder(rec)
    inside_rec, elsewhere = rec / "vm-1.wav", tmp_path / "vm-1.wav"
    for path in (inside_rec, elsewhere):
        path.write_bytes(b"x")
    spool = Spool(rt.setting("spool_dir"))
    spool._release(inside_rec)
    spool._release(elsewhere)
    assert not inside_rec.exists() and elsewhere.exists()


def test_duration_of_a_recording_from_its_size(tmp_path):
    """8 kHz, 16-bit mono after the 44-byte header: 16 bytes a millisecond."""
    wav = tmp_path / "r.wav"
    assert file_size(wav) == -1 and recorded_ms(file_size(wav)) == 0
    wav.write_bytes(bytes(WAV_HEADER + 16_000))
    assert file_size(wav) == WAV_HEADER + 16_000
    assert recorded_ms(file_size(wav)) == 1000
    assert recorded_ms(WAV_HEADER) == 0 and recorded_ms(WAV_HEADER + 15) == 0
