"""The voice follows the mail's language when the mail does not say it."""

from __future__ import annotations

from mailcall.speech import guess_language


def test_french_and_english_bodies_are_told_apart():
    assert guess_language("Bonjour, je vous envoie le compte rendu de la réunion. "
                          "Merci pour votre aide.", "en") == "fr"
    assert guess_language("Hi, please find the minutes of the meeting attached. "
                          "Thanks for your help with this.", "fr") == "en"
    assert guess_language("Hallo, die Rechnung ist nicht bezahlt. Bitte prüfen Sie das "
                          "und danke.", "fr") == "de"


def test_too_little_or_mixed_text_keeps_the_default():
    assert guess_language("OK", "fr") == "fr"
    assert guess_language("", "en") == "en"
    assert guess_language("12345 67890 ----", "fr") == "fr"


def test_the_cost_is_bounded_on_a_huge_body():
    assert guess_language("la réunion est " * 300_000, "en") == "fr"
