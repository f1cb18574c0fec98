"""Faxes sent by SendFAX (a second Asterisk channel) into ReceiveFAX, mailed as PDF.

The sending machine is the first leg of a Local channel originated over AMI,
running SendFAX of a G3 TIFF in ``[live-fax-sender]``; its second leg enters
the dialplan at the fax number, as a call from the trunk would. The T.30
exchange is real (res_fax_spandsp, audio), about 10 s a page.
"""

from __future__ import annotations

import re

from .checks import agi_rx, pdf_pages


def test_fax_to_the_national_number_of_the_docs_is_mailed_as_pdf(live):
    """docs/asterisk.md §4's own fax line, 0140000299@from-trunk; the policy gives
    Carole +33140000299. Issue 10 §2: the national form was not looked up (the fax
    ended NO_MAILBOX and the TIFF stayed in rec/)."""
    live.fax("0140000299", live.media.fax_2pages)
    log = live.asterisk_log()
    assert re.search(r"Channel 'Local/0140000299@from-trunk-\w+;2' receiving FAX", log), log[-3000:]
    assert "live fax sent: FAXSTATUS=SUCCESS FAXPAGES=2" in log
    rx = agi_rx(log)
    assert 'SET VARIABLE MAILCALL_STATUS "FAX"' in rx, rx
    [msg] = live.mail("carole", "Fax", timeout=40)
    assert msg["Message-Context"] == "fax-message"
    assert "+33155500011" in msg["Subject"]
    assert pdf_pages(msg) == 2
    assert not list((live.spool / "rec").glob("fax-*")), "the TIFF stayed in rec/"


def test_fax_to_an_e164_number_is_mailed_as_pdf(live):
    live.fax("+33140000299", live.media.fax_1page, context="live-fax-e164")
    rx = agi_rx(live.asterisk_log())
    assert 'SET VARIABLE MAILCALL_STATUS "FAX"' in rx, rx
    assert 'SET VARIABLE MAILCALL_VOICEMAIL "carole"' in rx
    [msg] = live.mail("carole", "Fax", timeout=40)
    assert msg["Message-Context"] == "fax-message"
    assert pdf_pages(msg) == 1
    assert live.all_mail("carole").get("INBOX") == 0
