"""The fax handler mails only this call's own fax file, whatever the AGI arguments say.

Review finding (issue #3): a pattern routed to ``[mailcall-fax]`` lets the
caller choose ``${EXTEN}``; dialling ``201,/var/spool/mailcall/rec/vm-X.wav``
makes AGI argument 2 that path, and the handler used to mail any file inside
``rec/`` - another caller's voicemail. The only file accepted now is
``{spool_dir}/rec/fax-{agi_uniqueid}.tif``, the dialplan's MAILCALL_FAXFILE.
"""

from __future__ import annotations

import logging
import os
import shutil

from .fake_asterisk import RECORDED, Call
from .harness import make_runtime
from .support import MEDIA
from .test_handlers import drive

CALL_ID = "1795887828.27"
OTHER_CALL = "1795887700.4"


def _spool(tmp_path):
    rec = tmp_path / "spool" / "rec"
    rec.mkdir(parents=True)
    voicemail = rec / f"vm-{OTHER_CALL}.wav"  # someone else's message, waiting in rec/
    shutil.copyfile(MEDIA / "voicemail-dtmf-end.wav", voicemail)
    own = rec / f"fax-{CALL_ID}.tif"
    shutil.copyfile(MEDIA / "fax-received-g3.tif", own)
    return rec, voicemail, own


def _call(*args: str, script: str = "fax", uniqueid: str = CALL_ID) -> Call:
    return Call(script=script, args=args, uniqueid=uniqueid, variables=dict(RECORDED.fax_vars))


def test_extension_with_a_comma_cannot_mail_another_callers_voicemail(tmp_path, caplog):
    """``AGI(.../fax,${MAILCALL_FAXTO},${MAILCALL_FAXFILE})`` with EXTEN = ``201,<path>``."""
    caplog.set_level(logging.WARNING, logger="mailcall.agi.fax")
    rt = make_runtime(tmp_path)
    _rec, voicemail, own = _spool(tmp_path)
    call = drive(rt, _call("201", str(voicemail), str(own)))
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "alice"
    assert msg.tiff is None and rt.depositor.audio == [None]  # nothing was read
    assert msg.status == "FAILED"
    assert str(voicemail) not in msg.error  # the recipient is not told the path tried
    assert call.variables_set["MAILCALL_STATUS"] == "FAX_FAILED"
    assert "refused" in caplog.text and str(voicemail) in caplog.text
    assert str(own) in caplog.text  # the log says which file would have been right
    assert voicemail.is_file() and own.is_file()  # both left alone


def test_query_file_of_another_call_is_refused(tmp_path):
    rt = make_runtime(tmp_path)
    rec, _voicemail, _own = _spool(tmp_path)
    other_fax = rec / f"fax-{OTHER_CALL}.tif"
    shutil.copyfile(MEDIA / "fax-received-g3.tif", other_fax)
    drive(rt, _call(script=f"fax?mailbox=alice&file={other_fax}"))
    (msg,) = rt.depositor.messages
    assert msg.tiff is None and msg.status == "FAILED"


def test_own_fax_file_is_accepted_however_spelt(tmp_path):
    rt = make_runtime(tmp_path)
    _rec, _voicemail, own = _spool(tmp_path)
    spelt = f"{tmp_path}//spool/./rec/fax-{CALL_ID}.tif"
    call = drive(rt, _call("201", spelt))
    (msg,) = rt.depositor.messages
    assert msg.status == "SUCCESS" and msg.tiff == str(own.resolve())
    assert rt.depositor.audio[0] == (MEDIA / "fax-received-g3.tif").read_bytes()
    assert call.variables_set["MAILCALL_STATUS"] == "FAX"


def test_no_file_argument_means_this_calls_file(tmp_path):
    rt = make_runtime(tmp_path)
    _rec, _voicemail, own = _spool(tmp_path)
    drive(rt, _call("201"))
    (msg,) = rt.depositor.messages
    assert msg.status == "SUCCESS" and msg.tiff == str(own.resolve())


def test_own_name_as_a_symlink_to_a_voicemail_is_refused(tmp_path):
    rt = make_runtime(tmp_path)
    _rec, voicemail, own = _spool(tmp_path)
    own.unlink()
    os.symlink(voicemail, own)
    drive(rt, _call("201", str(own)))
    (msg,) = rt.depositor.messages
    assert msg.tiff is None and msg.status == "FAILED"
    assert rt.depositor.audio == [None]


def test_uniqueid_unfit_for_a_file_name_accepts_no_file(tmp_path):
    rt = make_runtime(tmp_path)
    rec, _voicemail, _own = _spool(tmp_path)
    odd = "../rec/fax-" + CALL_ID
    drive(rt, _call("201", str(rec / f"fax-{odd}.tif"), uniqueid=odd))
    (msg,) = rt.depositor.messages
    assert msg.tiff is None and msg.status == "FAILED"


def test_missing_own_file_is_a_failed_fax_not_a_crash(tmp_path):
    rt = make_runtime(tmp_path)
    _rec, _voicemail, own = _spool(tmp_path)
    own.unlink()
    call = drive(rt, _call("201", str(own)))
    (msg,) = rt.depositor.messages
    assert msg.tiff is None and msg.status == "FAILED" and "does not exist" in msg.error
    assert call.variables_set["MAILCALL_STATUS"] == "FAX_FAILED"
