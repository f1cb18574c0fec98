"""Voice and fax messages built from real and broken input, without a mail server."""

from __future__ import annotations

import functools
import io
from dataclasses import replace
from zoneinfo import ZoneInfo

import pypdf
import pytest
import soundfile

from mailcall.deposit.fax_message import build_fax_message, tiff_to_pdf
from mailcall.deposit.headers import serialise
from mailcall.deposit.voice_message import Origin, build_voice_message
from mailcall.plugins import deposit as plugin
from tests.deposit.support import MEDIA, fax, make_policy, parse, plugin_manager, voice

ORIGIN = Origin(
    sender="mailcall@example.test",
    domain="example.test",
    timezone=ZoneInfo("Europe/Paris"),
    sender_name="Test Org",
)
KEY = bytes.fromhex("6d61696c63616c6c2074657374206b6579206f662074686520746573747320")
"""A fixed deposit key: these tests build messages, they do not read a spool."""
WAV = MEDIA / "voicemail-dtmf-end.wav"


@functools.cache
def _policy():
    return make_policy("127.0.0.1:24")


def plan(language: str, kind: str = "voice"):
    mailbox = "alice" if language == "fr" else "bob"
    deposit = voice("x", mailbox=mailbox) if kind == "voice" else fax("x", mailbox=mailbox)
    result = plugin.plan_for(_policy(), deposit)
    assert result.language == language
    return result


def build_voice(deposit, language="fr", encoder=None, tmp_path="/tmp"):
    msg = build_voice_message(
        deposit,
        plan(language),
        ORIGIN,
        recording=deposit.recording,
        encoder=encoder,
        workdir=tmp_path,
        key=KEY,
    )
    return parse(serialise(msg))


@pytest.mark.parametrize(
    ("reason", "fr", "en"),
    [
        ("busy", "la ligne était occupée", "the line was busy"),
        ("no-answer", "personne n'a répondu", "nobody answered"),
        ("unavailable", "le poste était injoignable", "the phone could not be reached"),
        ("absent", "le destinataire est absent", "the recipient is away"),
        ("off-hours", "en dehors des heures d'ouverture", "outside office hours"),
        ("direct", "demandé directement la messagerie", "asked for voicemail directly"),
    ],
)
def test_reason_is_told_in_both_languages(reason, fr, en):
    for language, expected in (("fr", fr), ("en", en)):
        msg = build_voice(voice("1.1", reason=reason), language)
        assert expected in msg.get_body(("plain",)).get_content()


def test_voice_message_with_the_real_recording(tmp_path):
    msg = build_voice(voice("1764260525.11", name="", number="202"), "en", tmp_path=tmp_path)
    assert msg["Message-Context"] == "voice-message"
    assert msg["Subject"] == "Voicemail from 202 (2 s)"
    text = msg.get_body(("plain",)).get_content()
    assert "Call back: <tel:202;phone-context=example.test>" in text
    assert "Length: 2 s" in text
    part = next(msg.iter_attachments())
    assert part.get_content_type() == "audio/wav"
    assert part["Content-Duration"] == "2"
    assert part.get_content() == WAV.read_bytes()  # WAV as recorded: bit for bit
    assert part["MIME-Version"] is None


def test_withheld_number(tmp_path):
    msg = build_voice(voice("1.2", name="", number=""), "fr", tmp_path=tmp_path)
    assert msg["Subject"].startswith("Message vocal de Numéro masqué")
    assert "tel:" not in msg.get_body(("plain",)).get_content()


def broken_recordings(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(range(256)) * 4)
    silence = tmp_path / "header-only.wav"
    soundfile.write(silence, [], 8000, subtype="PCM_16")
    return {
        "none": (None, "introuvable", "missing"),
        "missing": (str(tmp_path / "gone.wav"), "introuvable", "missing"),
        "empty": (str(empty), "vide", "empty"),
        "corrupt": (str(corrupt), "illisible", "cannot be read"),
        "header-only": (str(silence), "vide", "empty"),
    }


@pytest.mark.parametrize("case", ["none", "missing", "empty", "corrupt", "header-only"])
def test_bad_recording_gives_a_missed_call_message(tmp_path, case):
    path, fr_word, en_word = broken_recordings(tmp_path)[case]
    deposit = replace(voice("1.3"), recording=path)
    fr = build_voice(deposit, "fr", tmp_path=tmp_path)
    assert fr["Subject"] == "Appel manqué de Bernard Petit (+33698765432)"
    assert fr["Message-Context"] == "voice-message"
    assert list(fr.iter_attachments()) == []
    text = fr.get_body(("plain",)).get_content()
    assert "Vous avez manqué un appel" in text
    assert fr_word in text
    en = build_voice(deposit, "en", tmp_path=tmp_path)
    assert en["Subject"] == "Missed call from Bernard Petit (+33698765432)"
    assert "tel:+33698765432" in en.get_body(("plain",)).get_content()
    assert en_word in en.get_body(("plain",)).get_content()


class ExplodingEncoder:
    format = "opus"
    extension = "opus"
    mime_type = "audio/ogg"
    name = "broken"

    def encode(self, wav_path, out_path):
        raise RuntimeError("encoder crashed")


def test_failed_encoding_falls_back_to_the_wav(tmp_path, caplog):
    msg = build_voice(voice("1.4"), "en", encoder=ExplodingEncoder(), tmp_path=tmp_path)
    part = next(msg.iter_attachments())
    assert part.get_content_type() == "audio/wav"
    assert "audio conversion failed" in msg.get_body(("plain",)).get_content()
    # The log names the encoder by its contract's attribute (AudioEncoder.format), not by
    # an undeclared ``name`` probed with getattr (issue 11).
    assert "opus encoding failed" in caplog.text and "broken" not in caplog.text


def test_opus_attachment_is_ogg_opus(tmp_path):
    encoder = plugin.encoders_from(plugin_manager())["opus"]
    msg = build_voice(voice("1.5"), "fr", encoder=encoder, tmp_path=tmp_path)
    part = next(msg.iter_attachments())
    assert part.get_content_type() == "audio/ogg"
    assert part.get_param("codecs") == "opus"
    data = part.get_content()
    assert data.startswith(b"OggS")
    assert abs(soundfile.info(io.BytesIO(data)).duration - soundfile.info(WAV).duration) < 0.05


def test_fax_real_g3_to_pdf():
    pdf, pages = tiff_to_pdf(MEDIA / "fax-received-g3.tif")
    assert pages == 1
    page = pypdf.PdfReader(io.BytesIO(pdf)).pages[0]
    # 1728 x 2292 pixels at 204 x 196 dpi: 609.9 x 842.0 pt, an A4 page
    assert abs(float(page.mediabox.width) - 609.9) < 1
    assert abs(float(page.mediabox.height) - 842.0) < 1


def test_fax_message_fr():
    deposit = fax("1764260600.1")
    msg = parse(serialise(build_fax_message(deposit, plan("fr", "fax"), ORIGIN,
                                            tiff=deposit.tiff, key=KEY)))
    assert msg["Message-Context"] == "fax-message"
    assert msg["Subject"] == "Télécopie de Compta Stock Inox (+33140000299) (1 page)"
    assert [p.get_content_type() for p in msg.iter_attachments()] == ["application/pdf"]


def test_fax_attachments_are_made_by_the_plan_s_converters(tmp_path):
    """Each format of the plan is made by the converter of that format, a plugin's as the
    built-in ones (hook mailcall_fax_converters), in the plan's order; the TIFF is the
    file as received."""
    from PIL import Image

    from mailcall.deposit.fax_converters import BUILTIN
    from tests.core.test_hooks import PngFirstPage

    deposit = fax("1764260600.2")
    converters = {c.format: c for c in (*BUILTIN, PngFirstPage())}
    fax_plan = replace(plan("en", "fax"), fax_formats=("png", "tiff"))
    msg = parse(serialise(build_fax_message(deposit, fax_plan, ORIGIN, tiff=deposit.tiff,
                                            key=KEY, converters=converters,
                                            workdir=str(tmp_path))))
    parts = list(msg.iter_attachments())
    assert [p.get_content_type() for p in parts] == ["image/png", "image/tiff"]
    assert parts[0].get_filename().endswith(".png")
    with Image.open(io.BytesIO(parts[0].get_content())) as page:
        assert page.size == (1728, 2292)  # the real fax page, decoded by the plugin
    assert parts[1].get_content() == (MEDIA / "fax-received-g3.tif").read_bytes()


def test_a_failing_fax_converter_gives_the_notice_with_its_reason(tmp_path):
    class Broken:
        format, mime_type, extension = "pdf", "application/pdf", "pdf"

        def convert(self, tiff_path, out_path):
            raise ValueError("no PDF today")

    deposit = fax("1764260600.3")
    msg = parse(serialise(build_fax_message(deposit, plan("en", "fax"), ORIGIN,
                                            tiff=deposit.tiff, key=KEY,
                                            converters={"pdf": Broken()},
                                            workdir=str(tmp_path))))
    assert msg["Subject"].startswith("Fax not received from")
    assert list(msg.iter_attachments()) == []
    assert "cannot be converted to pdf (no PDF today)" in msg.get_body(("plain",)).get_content()


@pytest.mark.parametrize("case", ["failed", "empty", "corrupt", "no-file"])
def test_failed_fax_gives_a_notice_with_the_reason(tmp_path, case):
    empty = tmp_path / "empty.tif"
    empty.write_bytes(b"")
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\xff" * 64)
    deposit = {
        "failed": fax(
            "2.1", status="FAILED", error="T.30 protocol error: no response after EOP", tiff=""
        ),
        "empty": fax("2.2", tiff=str(empty)),
        "corrupt": fax("2.3", tiff=str(corrupt)),
        "no-file": fax("2.4", tiff=""),
    }[case]
    for language, subject, reason in (
        ("fr", "Télécopie non reçue de", "Raison : "),
        ("en", "Fax not received from", "Reason: "),
    ):
        msg = parse(
            serialise(build_fax_message(deposit, plan(language, "fax"), ORIGIN,
                                        tiff=deposit.tiff, key=KEY))
        )
        assert msg["Message-Context"] == "fax-message"
        assert msg["Subject"].startswith(subject)
        assert list(msg.iter_attachments()) == []
        text = msg.get_body(("plain",)).get_content()
        assert reason in text
        expected = {
            "failed": "T.30 protocol error",
            "empty": "is empty",
            "corrupt": "cannot be",
            "no-file": "no fax file",
        }[case]
        assert expected in text


def test_every_policy_language_has_all_the_deposit_words():
    """One list of languages (the policy's): the wording tables cover each of them, with
    the same keys, so no language a policy accepts falls back to English by accident."""
    from mailcall.core.policy.value_checks import LANGUAGES
    from mailcall.deposit import wording

    assert wording.LANGUAGES is LANGUAGES
    for table in (wording._DAYS, wording._MONTHS, wording._REASONS, wording._T):
        assert set(table) == set(LANGUAGES)
        if isinstance(table["en"], dict):
            assert all(set(table[code]) == set(table["en"]) for code in LANGUAGES)
    assert {wording.lang(code) for code in LANGUAGES} == set(LANGUAGES)
