"""Caller IDs an attacker writes in the SIP ``From`` header, through the real Asterisk.

PJSIP takes the display name and the user part as sent (the trunk endpoint has
no fixed caller ID) and decodes ``%XX``: a CR LF in the user reaches AGI raw,
inside the environment block, and quotes in the name arrive backslash-escaped
(``../shared/asterisk/README.md``). Each call goes to Carole, whose phone is
busy, and ends as a voicemail: the test reads what her mailbox got.
"""

from __future__ import annotations

import re

from .checks import body_text, executed, leave_message


def _voicemail_from(live, *, from_user: str, from_name: str | None):
    live.phone("203", "busy")
    caller = live.call("+33140000203", leave_message(live.media.speech), from_user=from_user,
                       from_name=from_name)
    assert caller.final_code() == 200
    [msg] = live.mail("carole", "Voicemail")
    return msg


def test_display_name_with_quotes_reaches_the_mail_unescaped(live):
    """Issue 10 §2: ``Jean \\"Le Boss\\" Dupont-Étienne`` came out with the backslashes."""
    name = 'Jean "Le Boss" Dupont-Étienne'
    msg = _voicemail_from(live, from_user="+33611111111", from_name=name)
    assert "agi_calleridname: Jean \\\"Le Boss\\\" Dupont-Étienne" in live.asterisk_log()
    assert name in msg["Subject"]
    # The From phrase drops RFC 5322 specials, quotes among them, by design
    # (deposit/headers.py display_name: folding would lose quoting).
    assert msg["From"].addresses[0].display_name == "Jean Le Boss Dupont-Étienne"
    assert "\\" not in msg["Subject"] and "\\" not in str(msg["From"])
    assert name in body_text(msg)


def test_crlf_in_the_caller_number_neither_loses_the_call_nor_injects(live):
    """Issue 10 §2: ``%0d%0a`` in the From user put ``Bcc: x@evil`` inside the AGI
    environment block and mailcall answered PROTOCOL_ERROR, routing nothing."""
    msg = _voicemail_from(live, from_user="+33611111111\r\nBcc: x@evil.example",
                          from_name="Client Dupont")
    log = live.asterisk_log()
    assert re.search(r"AGI Tx >> agi_callerid: \+33611111111\r?\n.*AGI Tx >> Bcc: x@evil\.example",
                     log) or "Bcc: x@evil.example" in log, "the CR LF did not reach AGI: no test"
    assert 'outcome="PROTOCOL_ERROR"' not in live.mailcall_log()
    assert msg["Bcc"] is None
    raw = msg.as_bytes()
    assert not re.search(rb"^Bcc:", raw, re.M | re.I)
    for header in ("Subject", "From"):
        assert "\r" not in str(msg[header]) and "\n" not in str(msg[header])
    assert "Client Dupont" in msg["Subject"]


def test_a_copy_of_asterisks_agi_line_in_the_caller_number_is_routed(live):
    """Issue 10 §2 (review): From user ``1%0d%0aagi_context:%20x`` made the caller
    number end in a copy of Asterisk's own ``agi_context`` line; mailcall refused the
    whole block (PROTOCOL_ERROR) and routed nothing. The copy is the caller's text."""
    msg = _voicemail_from(live, from_user="1\r\nagi_context: x", from_name="Client Dupont")
    log = live.asterisk_log()
    assert re.search(r"AGI Tx >> agi_callerid: 1\r?\n.*AGI Tx >> agi_context: x\n", log) \
        or "agi_context: x" in log, "the CR LF did not reach AGI: no test"
    mailcall_log = live.mailcall_log()
    assert 'outcome="PROTOCOL_ERROR"' not in mailcall_log
    assert re.search(r'script="route".*outcome="VOICEMAIL"', mailcall_log), mailcall_log[-2000:]
    raw = msg.as_bytes()
    assert not re.search(rb"^agi_context:", raw, re.M | re.I)
    for header in ("Subject", "From"):
        assert "\r" not in str(msg[header]) and "\n" not in str(msg[header])
    assert "Client Dupont" in msg["Subject"]


def test_dollar_expressions_in_the_caller_id_stay_text(live):
    """``${...}``, ``$[...]`` and ``$(...)`` from the caller are never evaluated, by
    Asterisk or by mailcall: the mail shows them as written (or drops them), and
    nothing ran."""
    name = "Eve ${SHELL(id)} $(id)"  # sipp keeps [ ] for itself: $[ goes in the user part
    msg = _voicemail_from(live, from_user="${CHANNEL}$[1+1]$(id)", from_name=name)
    log = live.asterisk_log()
    assert "agi_calleridname: Eve ${SHELL(id)} $(id)" in log
    assert "agi_callerid: ${CHANNEL}$[1+1]$(id)" in log
    assert not executed(log, "System") and "uid=" not in log
    shown = msg["Subject"] + str(msg["From"]) + body_text(msg)
    assert "PJSIP/trunk" not in shown, "a ${CHANNEL} was expanded"
    assert "uid=" not in shown and "Eve" in msg["Subject"]
    assert "${SHELL(id)}" in shown  # the name is shown as the caller wrote it
