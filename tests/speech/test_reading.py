"""Mail text prepared for the ear: links, addresses, numbers, length, hostile characters."""

from __future__ import annotations

import time

from hypothesis import given, settings
from hypothesis import strategies as st

from mailcall.speech.reading import MAX_SENTENCE_CHARS, speakable_sentences


def test_sentences_are_split_but_not_at_abbreviations():
    text = "Bonjour M. Dupont. La réunion est confirmée ! Venez-vous ? Merci."
    assert speakable_sentences(text, "fr") == [
        "Bonjour M. Dupont.", "La réunion est confirmée !", "Venez-vous ?", "Merci."]
    assert speakable_sentences("Dr. Smith called. See you e.g. tomorrow.", "en") == [
        "Dr. Smith called.", "See you e.g. tomorrow."]


def test_each_line_is_spoken_and_separator_lines_are_not():
    text = "Subject line\n\n-----------------\n*** ***\nSecond line"
    assert speakable_sentences(text, "en") == ["Subject line", "Second line"]


def test_a_long_url_is_read_as_a_link_to_its_site():
    url = "https://www.tracking.example.com/c/eJx1kMFuwzAIhl8l8t2p7SZZ?utm_source=x&id=123456789"
    assert speakable_sentences(f"Click {url} now.", "en") == [
        "Click link to tracking.example.com now."]
    assert speakable_sentences(f"Cliquez {url}", "fr") == [
        "Cliquez lien vers tracking.example.com"]
    assert speakable_sentences("http://user:pw@[::1]:8080/x", "en") == ["a link"]
    assert speakable_sentences("See https://example.com/a. Then call.", "en") == [
        "See link to example.com.", "Then call."]


def test_addresses_are_read_as_name_at_domain():
    assert speakable_sentences("Write to jean.dupont@example.fr today.", "en") == [
        "Write to jean dupont at example.fr today."]
    assert speakable_sentences("mailto:a_b@x.example", "fr") == ["a b arobase x.example"]


def test_phone_numbers_are_read_in_the_writers_groups_digit_by_digit():
    assert speakable_sentences("Call 06 12 34 56 78.", "fr") == [
        "Call 0 6, 1 2, 3 4, 5 6, 7 8."]
    assert speakable_sentences("Call +33 6 12 34 56 78, thanks.", "en") == [
        "Call plus 3 3, 6, 1 2, 3 4, 5 6, 7 8, thanks."]
    assert speakable_sentences("Order 123456789 is late.", "en") == [
        "Order 1 2 3, 4 5 6, 7 8 9 is late."]


def test_dates_amounts_and_short_numbers_are_left_to_the_engine():
    text = "On 12/05/2026 and 2026-12-01, 1 000 000 EUR, 3,14159 and 12.50 for 2026."
    assert speakable_sentences(text, "en") == [text]


def test_numbers_and_tokens_too_long_to_listen_to_are_named_not_read():
    assert speakable_sentences("Ref 1234567890123456789012345.", "en") == ["Ref a long number."]
    blob = "aGVsbG8gd29ybGQgdGhpcyBpcyBhIGxvbmcgYmFzZTY0IGJsb2I="
    assert speakable_sentences(f"Key: {blob}", "fr") == ["Key: un code"]


def test_markup_stays_text_for_the_engine():
    text = '<speak><break time="20s"/></speak> [[h@l\'oU]]'
    assert speakable_sentences(text, "en") == [text]


def test_control_and_bidi_characters_never_reach_the_engine():
    [sentence] = speakable_sentences("evil\u202e \x1b[31mred\x07 zero\u200bwidth\x00", "en")
    assert sentence == "evil [31mred zero width"
    assert all(ch.isprintable() for ch in sentence)


def test_one_megabyte_body_is_cut_quickly_with_a_spoken_note():
    body = ("This sentence is part of a very long mail. " * 30000)[:1_000_000]
    started = time.perf_counter()
    sentences = speakable_sentences(body, "en", max_chars=5000)
    assert time.perf_counter() - started < 1.0
    assert sum(len(s) + 1 for s in sentences) < 5000 + 100
    assert sentences[-1] == "The rest of this message is not read."
    assert speakable_sentences(body, "fr", max_chars=200)[-1] == (
        "La suite de ce message n'est pas lue.")


def test_a_sentence_without_end_is_cut_at_a_comma_or_a_space():
    text = ", ".join(["un deux trois quatre cinq six sept"] * 40)
    pieces = speakable_sentences(text, "fr")
    assert len(pieces) > 1
    assert all(len(p) <= MAX_SENTENCE_CHARS for p in pieces)
    assert " ".join(pieces).replace(" ", "") == text.replace(" ", "")  # nothing lost
    no_space = "a" * 1000  # one token: named, not spelled out
    assert speakable_sentences(no_space, "en") == ["a code"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=3000))
def test_any_text_gives_bounded_clean_sentences(text):
    sentences = speakable_sentences(text, "en", max_chars=2000)
    assert sum(len(s) + 1 for s in sentences) <= 2000 + 60
    for sentence in sentences:
        assert 0 < len(sentence) <= MAX_SENTENCE_CHARS
        assert "\n" not in sentence and "\x00" not in sentence
        assert all(ch.isprintable() for ch in sentence)
