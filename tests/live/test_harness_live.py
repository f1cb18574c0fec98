"""The harness itself: what other live tests rely on (AMI, MWI NOTIFY to a sipp phone)."""

from __future__ import annotations

import time

from .conftest import docs_contexts


def test_the_dialplan_is_the_docs_one_with_the_include_at_the_end(asterisk):
    conf = (asterisk.ast.etc / "extensions.conf").read_text()
    assert docs_contexts() in conf
    assert conf.rstrip().endswith('#include "extensions-mailcall.conf"')
    shown = asterisk.ast.rx("dialplan show mailcall-check-number").stdout
    assert "mailcall-refused" in shown  # the shipped snippet is loaded


def test_ami_mwi_update_reaches_the_phone_as_a_notify(live):
    """AMI (port and secret from the fixture) sets a mailbox's lamp; the endpoint's
    ``mailboxes=201@mailcall`` makes Asterisk send the NOTIFY to the sipp phone."""
    phone = live.phone("201", "answer")
    with live.ast.ami() as ami:
        reply = ami.action("MWIUpdate", Mailbox="201@mailcall", NewMessages="2",
                           OldMessages="1")
        assert reply.get("Response") == "Success", reply
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not any(
            "Messages-Waiting: yes" in m for m in phone.requests("NOTIFY")):
        time.sleep(0.1)
    notify = [m for m in phone.requests("NOTIFY") if "Messages-Waiting: yes" in m]
    assert notify, phone.received()
    assert "Event: message-summary" in notify[-1]
    assert "Voice-Message: 2/1" in notify[-1]
