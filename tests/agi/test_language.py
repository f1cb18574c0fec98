"""Callers hear the callee's language (issue 10, section 2).

With ``language = "fr"`` (organisation or user) callers heard English stock
prompts: nothing set ``CHANNEL(language)``. Every handler now sets it first,
``SET VARIABLE CHANNEL(language) "fr"`` (res_agi hands a name ending in ``)``
to the dialplan function, as ``Set(CHANNEL(language)=fr)`` does), before any
command that acts on the call.
"""

from __future__ import annotations

import shutil

import pytest

from .fake_asterisk import RECORDED, Call
from .harness import make_runtime, policy_text
from .support import MEDIA, TRACES, load_trace
from .test_handlers import drive

ENGLISH = {"organisation": {"language": "en"}}
ENGLISH_ORG = policy_text(ENGLISH)
"""The organisation speaks English; the users who say nothing follow it."""
FRENCH_CAROLE = policy_text(ENGLISH, {"users": {"carole": {"language": "fr"}}})
SET_FR = 'SET VARIABLE CHANNEL(language) "fr"\n'
SET_EN = 'SET VARIABLE CHANNEL(language) "en"\n'


def test_the_command_has_the_shape_asterisk_accepted():
    """The basic trace: SET VARIABLE with a quoted value answers ``200 result=1``."""
    basic = load_trace(TRACES / "basic.jsonl").after_env
    i = basic.index(("server", 'SET VARIABLE MAILCALL_TARGET "PJSIP/201&PJSIP/202"\n'))
    assert basic[i + 1] == ("asterisk", "200 result=1\n")


def _calls(tmp_path) -> dict[str, Call]:
    rec = tmp_path / "spool" / "rec"
    rec.mkdir(parents=True)
    shutil.copyfile(MEDIA / "fax-received-g3.tif", rec / "fax-1795887828.27.tif")
    return {
        "route": Call(args=("203",), dials=["noanswer"]),
        "voicemail": Call(script="voicemail", args=("203",)),
        "fax": Call(script="fax", args=("203",), uniqueid="1795887828.27",
                    variables=dict(RECORDED.fax_vars)),
        "greeting": Call(script="greeting", callerid="203", get_data=["0", "0", "0"]),
    }


@pytest.mark.parametrize("script", ["route", "voicemail", "fax", "greeting"])
def test_the_organisations_language_is_set_first(tmp_path, script):
    rt = make_runtime(tmp_path)  # the harness policy: organisation "fr"
    call = drive(rt, _calls(tmp_path)[script])
    assert call.commands[0] == SET_FR, call.commands
    assert call.commands.count(SET_FR) == 1  # once, even when route ends in voicemail


@pytest.mark.parametrize("script", ["route", "voicemail", "fax", "greeting"])
def test_the_users_own_language_wins(tmp_path, script):
    rt = make_runtime(tmp_path, policy_text=FRENCH_CAROLE)
    call = drive(rt, _calls(tmp_path)[script])
    assert call.commands[0] == SET_FR, call.commands


def test_english_stays_english(tmp_path):
    rt = make_runtime(tmp_path, policy_text=ENGLISH_ORG)
    call = drive(rt, _calls(tmp_path)["voicemail"])
    assert call.commands[0] == SET_EN and SET_FR not in call.commands


def test_the_mailbox_owners_language_for_a_groups_voicemail(tmp_path):
    """A call to the reception group (organisation: en) ends in Carole's mailbox (fr):
    her greeting prompts are played in French."""
    rt = make_runtime(tmp_path, policy_text=FRENCH_CAROLE)
    call = drive(rt, Call(args=("200",), dials=["noanswer"]))
    assert call.commands[0] == SET_EN
    i = call.commands.index(SET_FR)
    assert i < next(k for k, c in enumerate(call.commands) if c.startswith("STREAM FILE"))
    assert call.variables_set["MAILCALL_VOICEMAIL"] == "carole"


def test_a_number_nobody_has_still_gets_the_organisations_language_first(tmp_path):
    rt = make_runtime(tmp_path, policy_text=ENGLISH_ORG)
    call = drive(rt, Call(args=("999",)))
    assert call.commands[:2] == [SET_EN, 'SET VARIABLE MAILCALL_STATUS "NO_ROUTE"\n']
