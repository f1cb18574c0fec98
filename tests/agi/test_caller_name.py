"""The caller's SIP display name, as it reaches the mail (issue 10, section 2).

A display name with quotes reaches ``agi_calleridname`` backslash-escaped
(``../shared/asterisk/README.md``: PJSIP keeps a quoted-string's escapes and
res_pjsip copies it as it is): the Subject and From said
``Jean \\"Le Boss\\" Dupont-Étienne``. Only RFC 3261 quoted-pairs are undone.
"""

from __future__ import annotations

import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcall.agi.safety import caller_name, unescape_display_name

from .fake_asterisk import RECORDED, Call
from .harness import make_runtime
from .support import MEDIA
from .test_handlers import drive

AS_RECEIVED = 'Jean \\"Le Boss\\" Dupont-Étienne'
"""What the live Asterisk put in agi_calleridname for ``"Jean \\"Le Boss\\" Dupont-Étienne"``."""


@pytest.mark.parametrize("raw, shown", [
    (AS_RECEIVED, 'Jean "Le Boss" Dupont-Étienne'),
    ("Alice Martin", "Alice Martin"),
    ("a\\\\b", "a\\b"),  # an escaped backslash
    ("a\\\\\\\"b", 'a\\"b'),  # an escaped backslash, then an escaped quote
    ("C:\\é", "C:\\é"),  # not a quoted-pair: a backslash before non-ASCII stays
    ("end\\", "end\\"),  # a lone backslash at the end stays
    ("x\\\ry", "x\\\ry"),  # CR cannot be escaped: left as is (then cleaned for display)
])
def test_only_quoted_pairs_are_undone(raw, shown):
    assert unescape_display_name(raw) == shown


def test_name_for_the_mail_is_unescaped_then_cleaned():
    assert caller_name(AS_RECEIVED) == 'Jean "Le Boss" Dupont-Étienne'
    assert caller_name('Evil\\"\r\nBcc: x@evil') == 'Evil" Bcc: x@evil'


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=60))
def test_a_name_quoted_as_sip_does_comes_back(name):
    """RFC 3261 quoted-string: ``"`` and ``\\`` escaped (and any other ASCII may be)."""
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    assert unescape_display_name(quoted) == name
    every = "".join("\\" + ch if ch.isascii() else ch for ch in name)
    assert unescape_display_name(every) == name


def test_voicemail_subject_and_from_get_the_plain_name(tmp_path):
    rt = make_runtime(tmp_path)
    drive(rt, Call(script="voicemail", args=("carole",), calleridname=AS_RECEIVED))
    (msg,) = rt.depositor.messages
    assert msg.caller_name == 'Jean "Le Boss" Dupont-Étienne'


def test_fax_gets_the_plain_name(tmp_path):
    rt = make_runtime(tmp_path)
    rec = tmp_path / "spool" / "rec"
    rec.mkdir(parents=True)
    shutil.copyfile(MEDIA / "fax-received-g3.tif", rec / "fax-1795887828.27.tif")
    drive(rt, Call(script="fax", args=("201",), uniqueid="1795887828.27",
                   calleridname=AS_RECEIVED, variables=dict(RECORDED.fax_vars)))
    (msg,) = rt.depositor.messages
    assert msg.caller_name == 'Jean "Le Boss" Dupont-Étienne'
