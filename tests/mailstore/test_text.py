"""The text side without a server: HTML, trimming, language, structure, bounds on hostile input.

Timings here are bounds on hostile input (what a mail sender controls), set
tens of times above what the code takes, so they fail only on a quadratic
regression — the kind measured in mailstore/html_text.py and trim.py docstrings.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from imapclient.response_parser import parse_fetch_response

from mailcall.mailstore.fetch import parse_fetch, to_text, transfer_decoded
from mailcall.mailstore.html_text import html_to_text
from mailcall.mailstore.language import guess_language
from mailcall.mailstore.readable import MAX_CHARS, choose_body, readable
from mailcall.mailstore.structure import parts
from mailcall.mailstore.summary import MessageSummary, deposit_caller, language_tag
from mailcall.mailstore.trim import new_text

FR_REPLY = """Bonjour Alice,

Voici le planning de la semaine prochaine.
- lundi : réunion
- mardi : client

Cordialement,
Bernard
--
Bernard Petit, Stock Inox
Tél. 01 40 00 02 99

Le 27 nov. 2026 à 17:42, Alice Martin <alice@example.test> a écrit :
> Peux-tu m'envoyer le planning ?
"""

EN_OUTLOOK = """Hi Alice,

The report is attached.
Sent from my iPhone

This email and any attachments are confidential and intended only for the named
recipient. If you received this email in error please delete it.

From: Alice Martin
Sent: Friday, November 27, 2026 5:42 PM
To: Bob Smith
Subject: report

Can you send the report?
"""


def test_reply_quote_signature_and_lists():
    assert new_text(FR_REPLY) == ("Bonjour Alice,\n\nVoici le planning de la semaine prochaine."
                                  "\n- lundi : réunion\n- mardi : client\n\nCordialement,\n"
                                  "Bernard")


def test_outlook_header_phone_footer_and_disclaimer():
    assert new_text(EN_OUTLOOK) == "Hi Alice,\n\nThe report is attached."


def test_wrote_line_split_in_two_and_inline_quotes():
    text = ("Yes, fine by me.\n> quoted in the middle\nSee you.\n\nOn Fri, 27 Nov 2026 at 17:42,\n"
            "Alice Martin <alice@example.test> wrote:\n> old")
    assert new_text(text) == "Yes, fine by me.\nSee you."


def test_forwarded_content_is_kept():
    text = "FYI\n\n---------- Forwarded message ---------\nFrom: Carole\nThe figures: 12"
    assert "The figures: 12" in new_text(text)


def test_language_guess():
    assert guess_language(FR_REPLY) == "fr"
    assert guess_language(EN_OUTLOOK) == "en"
    assert guess_language("12 34 56") is None
    assert language_tag("fr-CA, en") == "fr"
    assert language_tag("x") is None and language_tag(None) is None


def test_html_to_text_drops_scripts_styles_quotes_and_keeps_blocks():
    text, cut = html_to_text(
        "<html><head><title>T</title><style>p{}</style></head><body><p>Bonjour "
        "<b>Alice</b></p><script>alert(1)</script><table><tr><td>a</td><td>b</td></tr>"
        "</table><img alt='logo'><blockquote type='cite'>ancien</blockquote>"
        "<div class='gmail_quote'>vieux</div>fin</body></html>", 1000)
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    assert lines == ["Bonjour Alice", "a b", "logo", "fin"]
    assert not cut


def test_speech_markup_in_html_is_only_its_text():
    text, _ = html_to_text('<speak><break time="30s"/><audio src="http://evil/x.wav">'
                           'hello</audio><prosody rate="x-fast">there</prosody></speak>', 1000)
    assert "".join(text.split()) == "hellothere"


def test_hostile_html_is_bounded_in_time_and_size():
    nested = "<div>" * 100_000 + "deep" + "</div>" * 100_000
    rows = "\n".join(f"<tr><td>cell {i} <b>x</b></td></tr>" for i in range(10_000))
    unclosed = "<p><b><i><u>" * 20_000 + "text"
    for doc in (nested, f"<table>{rows}</table>", unclosed, "<" * 500_000, "&#" * 300_000):
        start = time.perf_counter()
        text, _cut = html_to_text(doc, 20_000)
        assert time.perf_counter() - start < 2.0
        assert len(text) < 40_000


def test_trim_is_linear_on_hostile_text():
    for text in (" \n" * 200_000, "a" * 1_000_000, ("On " + "x " * 5000 + "\n") * 100,
                 "> " * 500_000, "From: a\n" * 100_000, ("Le " + "é" * 300 + "\n") * 3000):
        start = time.perf_counter()
        new_text(text)
        assert time.perf_counter() - start < 2.0


def test_transfer_encodings_cut_or_damaged_never_raise():
    assert transfer_decoded(b"SGVsbG8gd29y\r\nbGQ=", "base64") == b"Hello world"
    assert transfer_decoded(b"SGVsbG8gd29yb", "base64") == b"Hello wor"  # cut by a partial
    assert transfer_decoded(b"!!!", "base64") == b""
    assert transfer_decoded(b"caf=C3=A9 =\r\nok", "quoted-printable") == "café ok".encode()
    assert to_text("é".encode("latin-1"), "iso-8859-1") == "é"
    assert to_text(b"x", "zlib") == "x"  # not a text codec
    assert to_text(b"x", "no-such-charset") == "x"


BODYSTRUCTURE = (
    b'1 (UID 7 BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable"'
    b' 300 10 NIL NIL NIL NIL)(("text" "plain" ("charset" "utf-8") NIL NIL "7bit" 30 1 NIL NIL'
    b' NIL NIL)("text" "html" ("charset" "utf-8") NIL NIL "7bit" 60 1 NIL NIL NIL NIL)'
    b' "alternative" ("boundary" "b") NIL NIL NIL)("application" "pdf" ("name" "x.pdf") NIL NIL'
    b' "base64" 4000 NIL ("attachment" ("filename" "=?utf-8?q?r=C3=A9sum=C3=A9?=.pdf")) NIL NIL)'
    b' "mixed" ("boundary" "a") NIL NIL NIL))')


def test_bodystructure_parts_and_choice():
    entry = parse_fetch([BODYSTRUCTURE])[7]
    found = parts(entry[b"BODYSTRUCTURE"])
    assert [(p.number, p.mime_type, p.alternative) for p in found] == [
        ("1", "text/plain", None), ("2.1", "text/plain", "2"), ("2.2", "text/html", "2"),
        ("3", "application/pdf", None)]
    assert found[3].filename == "résumé.pdf" and found[3].disposition == "attachment"
    body, attachments = choose_body(found)
    assert body is not None and body.number == "1"
    assert [a.number for a in attachments] == ["3"]


def test_fetch_answers_without_uid_are_dropped():
    # An unsolicited flag change (no UID) must not be merged into UID 5's answer.
    data = [b"5 (FLAGS (\\Deleted))", b"2 (UID 5 FLAGS (\\Seen))"]
    assert parse_fetch_response(data, False, False)  # what imapclient gives, keyed by seq
    got = parse_fetch(data, {5})
    assert list(got) == [5] and got[5][b"FLAGS"] == (b"\\Seen",)


def test_deposit_caller_line():
    fr = ("Vous avez reçu un message vocal.\n\nAppelant : Bernard Petit (+33698765432)\n"
          "Rappeler : <tel:+33698765432>\n")
    assert deposit_caller(fr) == ("+33698765432", "Bernard Petit")
    en = "Caller: Withheld number\nWhen: ..."
    assert deposit_caller(en) == (None, None)
    internal = "Caller: 201\nCall back: <tel:201;phone-context=example.test>\n"
    assert deposit_caller(internal) == ("201", None)


def _summary(**kw) -> MessageSummary:
    when = datetime(2026, 11, 27, tzinfo=UTC)
    base = dict(uid=1, folder="INBOX", uidvalidity=1, kind="mail", seen=False, date=when,
                received=when, sender_name="", sender_address="", subject="", message_id=None,
                in_reply_to=None, references=(), language=None, caller_number=None,
                caller_name=None, duration=None, size=0)
    return MessageSummary(**{**base, **kw})


def test_readable_is_bounded_and_clean():
    hostile = ("Hello \u202eevil\u202c there\x00\x1b[31m <speak><audio src='x'/></speak>\n"
               * 50_000)
    start = time.perf_counter()
    out = readable(_summary(), text=hostile, cut=False, attachments=[])
    assert time.perf_counter() - start < 2.0
    assert len(out.text) <= MAX_CHARS and out.truncated
    assert not any(c in out.text for c in "\u202e\u202c\x00\x1b\r")
    assert "<speak><audio src='x'/></speak>" in out.text  # just text


def test_readable_announces_deposits():
    out = readable(_summary(kind="voice", caller_name="Bernard Petit", duration=12.0),
                   text="", cut=False, attachments=[], language="fr")
    assert out.text == "Message vocal de Bernard Petit.\nDurée : 12 secondes."
    out = readable(_summary(kind="fax", caller_number="+33140000299"), text="", cut=False,
                   attachments=[], language="en")
    assert out.text == "Fax from +33140000299."
