"""Recordings Asterisk leaves in ``{spool_dir}/rec`` go once the spool has its own copy.

Issue 10, section 2: nothing removed ``rec/vm-*.wav`` and ``rec/fax-*.tif`` after
the spool had copied them, so ``rec/`` grew with every message. Now the spool
removes one once its own copy and its record are on disk (``Spool.accept``),
and never otherwise: when the deposit failed the file is the only copy (the
docs and the ERROR line tell the admin it is kept), and a recording Asterisk
had not finished writing stays for whatever Asterisk still writes.

These run the real handlers against the real spool (``SpoolDepositor``).
"""

from __future__ import annotations

import os
import shutil
import struct
from datetime import datetime
from zoneinfo import ZoneInfo

from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.deposit.spool import Spool, spool_id
from mailcall.deposit.spool_depositor import SpoolDepositor

from .fake_asterisk import RECORDED, Call
from .harness import make_runtime
from .support import MEDIA
from .test_handlers import drive

CALL_ID = "1795887768.3"
FAX_ID = "1795887828.27"


def _spool_runtime(tmp_path):
    rt = make_runtime(tmp_path)
    spool = Spool(tmp_path / "spool")
    rt.depositor = SpoolDepositor(spool)
    return rt, spool


def _data(spool: Spool) -> list[str]:
    return sorted(p.name for p in (spool.root / "data").iterdir())


def test_voicemail_recording_is_removed_once_the_spool_has_it(tmp_path):
    rt, spool = _spool_runtime(tmp_path)
    call = drive(rt, Call(args=("203",), dials=["noanswer"], uniqueid=CALL_ID))
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    (recorded,) = call.recorded_to
    assert recorded.endswith(f"/rec/vm-{CALL_ID}.wav")
    assert not os.path.exists(recorded)
    assert list((spool.root / "rec").iterdir()) == []
    (copy,) = (spool.root / "data").iterdir()
    assert copy.read_bytes() == (MEDIA / "voicemail-dtmf-end.wav").read_bytes()
    assert spool.ids("incoming") == [copy.stem]


def test_fax_file_is_removed_once_the_spool_has_it(tmp_path):
    rt, spool = _spool_runtime(tmp_path)
    rec = spool.root / "rec"
    rec.mkdir(parents=True)
    tiff = rec / f"fax-{FAX_ID}.tif"
    shutil.copyfile(MEDIA / "fax-received-g3.tif", tiff)
    call = drive(rt, Call(script="fax", args=("201", str(tiff)), uniqueid=FAX_ID,
                          variables=dict(RECORDED.fax_vars)))
    assert call.variables_set["MAILCALL_STATUS"] == "FAX"
    assert not tiff.exists()
    (copy,) = (spool.root / "data").iterdir()
    assert copy.suffix == ".tif"
    assert copy.read_bytes() == (MEDIA / "fax-received-g3.tif").read_bytes()


def test_recording_is_kept_when_the_deposit_fails(tmp_path, caplog):
    """The spool copied the WAV, then could not write the record: not accepted, so the
    recording in rec/ is the caller's only message, and the ERROR line names it."""
    rt, spool = _spool_runtime(tmp_path)
    message = VoiceMessage(call_id=CALL_ID, mailbox="carole", caller_number="",
                           caller_name="", at=datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")),
                           reason="direct", recording=None)
    sid = spool_id(message)
    spool.ensure()
    # Where _write_atomic writes the record first: a folder there makes the write fail
    # after the recording was copied (the point where "before" matters).
    (spool.root / "tmp" / f"{sid}.json.{os.getpid()}.tmp").mkdir()
    call = drive(rt, Call(script="voicemail", args=("carole",), uniqueid=CALL_ID))
    assert call.variables_set["MAILCALL_STATUS"] == "DEPOSIT_FAILED"
    (recorded,) = call.recorded_to
    assert os.path.isfile(recorded)
    assert f"The recording is kept at {recorded}" in caplog.text
    assert spool.ids("incoming") == []


def _unfinished_wav(path) -> None:
    """A WAV as Asterisk leaves it while RECORD FILE still runs: both sizes 0."""
    data = bytearray((MEDIA / "voicemail-hangup-end.wav").read_bytes())
    struct.pack_into("<I", data, 4, 0)
    at = data.index(b"data")
    struct.pack_into("<I", data, at + 4, 0)
    path.write_bytes(bytes(data))


def test_a_recording_asterisk_is_still_writing_is_left_in_place(tmp_path):
    spool = Spool(tmp_path / "spool")
    rec = spool.root / "rec"
    rec.mkdir(parents=True)
    wav = rec / f"vm-{CALL_ID}.wav"
    _unfinished_wav(wav)
    spool.accept(VoiceMessage(call_id=CALL_ID, mailbox="carole", caller_number="",
                              caller_name="", at=datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")),
                              reason="direct", recording=str(wav)))
    assert wav.is_file()  # Asterisk may go on writing it
    assert len(_data(spool)) == 1


def test_a_file_outside_rec_is_never_removed(tmp_path):
    """Only rec/, where Asterisk records for mailcall: a plugin's deposit keeps its file."""
    spool = Spool(tmp_path / "spool")
    elsewhere = tmp_path / "mine.wav"
    shutil.copyfile(MEDIA / "voicemail-dtmf-end.wav", elsewhere)
    spool.accept(VoiceMessage(call_id=CALL_ID, mailbox="carole", caller_number="",
                              caller_name="", at=datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")),
                              reason="direct", recording=str(elsewhere)))
    assert elsewhere.is_file() and len(_data(spool)) == 1


def test_a_link_in_rec_is_refused_and_its_target_kept(tmp_path):
    spool = Spool(tmp_path / "spool")
    rec = spool.root / "rec"
    rec.mkdir(parents=True)
    target = tmp_path / "secret.wav"
    shutil.copyfile(MEDIA / "voicemail-dtmf-end.wav", target)
    link = rec / f"vm-{CALL_ID}.wav"
    link.symlink_to(target)
    spool.accept(VoiceMessage(call_id=CALL_ID, mailbox="carole", caller_number="",
                              caller_name="", at=datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")),
                              reason="direct", recording=str(link)))
    assert target.is_file() and link.is_symlink()
    assert _data(spool) == []
