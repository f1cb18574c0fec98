"""The one rule for outside text: every hidden or control character goes, whatever shows it."""

from __future__ import annotations

import unicodedata

from hypothesis import given
from hypothesis import strategies as st

from mailcall.core.text import display_text, truncate

HOSTILE = [
    "\x7f",  # DEL
    "\x85",  # NEL, a C1 control some viewers break lines on
    "\x9b",  # CSI, starts terminal escape sequences
    "\u2028", "\u2029",  # line and paragraph separators
    "\u202e", "\u202d", "\u2066", "\u2067", "\u2068", "\u2069",  # bidi overrides, isolates
    "\u200b", "\u200e", "\ufeff",  # zero-width space, LRM, BOM
    "\x1b", "\r", "\n", "\t", "\x00",
]


def test_every_hidden_character_becomes_a_space():
    for char in HOSTILE:
        assert display_text(f"a{char}b") == "a b", repr(char)


def test_reversed_text_cannot_hide_what_it_says():
    assert display_text("invoice\u202egpj.exe") == "invoice gpj.exe"


def test_lines_kept_only_when_asked():
    assert display_text("Bonjour\r\nà demain\rAlice\n") == "Bonjour à demain Alice"
    assert display_text("Bonjour\r\nà demain\rAlice\n", lines=True) == "Bonjour\nà demain\nAlice"
    assert display_text("a\u2028b", lines=True) == "a b"


def test_bytes_and_surrogates_are_read_as_replacement_characters():
    assert display_text(b"caf\xe9") == "caf\ufffd"
    assert display_text("x\udce9y") == "x\ufffdy"
    assert display_text("x\ud800y\udfff") == "x\ufffdy\ufffd"
    assert display_text(None) == ""


def test_limit_marks_the_cut():
    assert display_text("é" * 50, limit=10) == "é" * 9 + "…"
    assert len(display_text("word " * 100, limit=20)) <= 20
    assert truncate("short", 10) == "short"


@given(st.text(), st.booleans())
def test_nothing_hidden_survives(value, lines):
    shown = display_text(value, lines=lines)
    for char in shown:
        if lines and char == "\n":
            continue
        category = unicodedata.category(char)
        assert char == " " or category[0] not in "CZ", (value, char)
    assert shown == shown.strip()
