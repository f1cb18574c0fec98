"""One number lookup for routing, voicemail, fax and greetings (issue 10, section 2).

The fax to ``0140000299`` (docs/asterisk.md section 4's own example) ended
NO_MAILBOX: the fax handler looked the number up without the national forms
the routing rule reads, and its warning named ``s`` (the Gosub's extension).
"""

from __future__ import annotations

import ast
import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailcall.core.decisions.plans import CallRequest
from mailcall.core.decisions.routing import plan_call
from mailcall.core.policy.load import compile_text
from mailcall.core.policy.numbers import e164, find_mailbox, find_owner, language_of, mailbox_of

from .fake_asterisk import RECORDED, Call
from .harness import PIN_HASH, make_runtime, policy_text
from .support import MEDIA, REPO
from .test_handlers import drive

FAX_POLICY = policy_text({"users": {"carole": {"numbers": ["+33140000299"]}}})
"""The harness policy with Carole owning the docs' fax number."""
CALL_ID = "1795887828.27"


@pytest.fixture(scope="module")
def policy():
    return compile_text(FAX_POLICY, name="fax-policy.toml")


@pytest.mark.parametrize("number, owner", [
    ("+33140000299", "carole"),
    ("0140000299", "carole"),
    ("01 40 00 02 99", "carole"),
    ("0033140000299", "carole"),
    ("203", "carole"),
    ("200", "@reception"),
    ("0140000201", "alice"),
    ("0612345678", None),  # a mobile is not a number to call
    ("0140000999", None),
    ("abc", None),
    ("", None),
    (None, None),
    ("9" * 500, None),
])
def test_find_owner_reads_every_form(policy, number, owner):
    assert find_owner(policy, number) == owner


def test_mobiles_count_only_when_asked(policy):
    assert find_owner(policy, "0612345678", mobiles=True) == "alice"
    assert find_owner(policy, "+33612345678", mobiles=True) == "alice"
    assert e164("06 12 34 56 78", "FR") == "+33612345678" and e164("x", "FR") is None


def test_mailbox_and_language(policy):
    assert mailbox_of(policy, "@reception") == "carole"  # the group's mailbox
    assert find_mailbox(policy, "alice") == "alice"
    assert find_mailbox(policy, "0140000299") == "carole"
    assert find_mailbox(policy, "200") == "carole"
    assert find_mailbox(policy, "nobody") is None
    assert language_of(policy, "alice") == "fr" and language_of(policy, None) == "fr"


def test_routing_uses_the_same_lookup(policy):
    plan = plan_call(policy, CallRequest(callee="0140000299", caller="",
                                         at=datetime(2026, 12, 1, 10, 5, tzinfo=UTC)))
    assert plan.callee == "carole"


def _fax_call(number: str) -> Call:
    return Call(script="fax", args=(number,), uniqueid=CALL_ID,
                variables=dict(RECORDED.fax_vars))


def test_fax_to_a_national_number_is_filed(tmp_path):
    rt = make_runtime(tmp_path, policy_text=FAX_POLICY)
    rec = tmp_path / "spool" / "rec"
    rec.mkdir(parents=True)
    shutil.copyfile(MEDIA / "fax-received-g3.tif", rec / f"fax-{CALL_ID}.tif")
    call = drive(rt, _fax_call("0140000299"))
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "carole" and msg.status == "SUCCESS"
    assert call.variables_set["MAILCALL_STATUS"] == "FAX"
    assert call.variables_set["MAILCALL_VOICEMAIL"] == "carole"


def test_fax_to_nobodys_number_names_the_number(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mailcall.agi.fax")
    rt = make_runtime(tmp_path, policy_text=FAX_POLICY)
    call = drive(rt, _fax_call("0140000999"))
    assert call.variables_set["MAILCALL_STATUS"] == "NO_MAILBOX"
    (warning,) = [r.getMessage() for r in caplog.records]
    assert "'0140000999'" in warning and "AGI argument 1" in warning
    assert "'s'" not in warning
    assert f"fax-{CALL_ID}.tif" in warning  # where the fax, if any, stays


def test_voicemail_to_a_national_number(tmp_path):
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="voicemail", args=("0140000201",)))
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "alice"
    assert call.variables_set["MAILCALL_VOICEMAIL"] == "alice"


def test_voicemail_to_a_group_number_goes_to_its_mailbox(tmp_path):
    rt = make_runtime(tmp_path)
    drive(rt, Call(script="voicemail", args=("200",)))
    (msg,) = rt.depositor.messages
    assert msg.mailbox == "carole"


def test_voicemail_to_nobody_names_the_number(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="mailcall.agi.voicemail")
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="voicemail", args=("0140000999",)))
    assert call.variables_set["MAILCALL_STATUS"] == "NO_MAILBOX"
    assert "'0140000999'" in caplog.text and rt.depositor.messages == []


def test_greeting_recognises_a_mobile_in_national_form(tmp_path):
    """A trunk delivers Alice's mobile as 0612345678: she is still recognised."""
    rt = make_runtime(tmp_path)
    call = drive(rt, Call(script="greeting", callerid="0612345678",
                          get_data=["2468", "2"], record="dtmf"))
    assert PIN_HASH and call.variables_set["MAILCALL_STATUS"] == "GREETING_SAVED"
    assert (tmp_path / "greetings" / "alice" / "busy.wav").is_file()


def test_no_other_number_lookup_in_the_handlers_or_rules():
    """The policy's number indexes are read in one place, mailcall.core.policy.numbers."""
    readers = []
    for folder in ("agi", "core/decisions/rules", "phonemenu", "mailstore"):
        paths = sorted((REPO / folder).rglob("*.py"))
        assert paths, f"{folder} holds no module: this scan would check nothing"
        for path in paths:
            for node in ast.walk(ast.parse(path.read_text())):
                if (isinstance(node, ast.Attribute)
                        and node.attr in ("by_number", "by_extension", "by_mobile")):
                    readers.append(f"{Path(path).relative_to(REPO)}:{node.lineno}")
    assert readers == [], ("use mailcall.core.policy.numbers.find_owner instead: "
                           + ", ".join(readers))
