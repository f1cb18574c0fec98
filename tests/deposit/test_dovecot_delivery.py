"""Real recordings and the real fax go through the spool into a real Dovecot and are read back."""

from __future__ import annotations

import io

import pypdf
import pytest
import soundfile
from PIL import Image

from mailcall.deposit.headers import message_id
from mailcall.deposit.seal import deposit_key
from mailcall.deposit.spool import Spool
from tests.deposit.support import (
    MEDIA,
    USERS,
    fax,
    make_policy,
    make_worker,
    message_ids,
    parse,
    run,
    voice,
)

pytestmark = pytest.mark.dovecot


async def deposit_and_drain(worker, deposits, timeout: float = 60):
    await worker.start()
    try:
        for d in deposits:
            worker.spool.accept(d)
            worker.wake()
        await worker.drain(timeout)
    finally:
        await worker.stop(5)


def audio_part(msg):
    parts = [p for p in msg.iter_attachments() if p.get_content_maintype() == "audio"]
    assert len(parts) == 1, [p.get_content_type() for p in msg.iter_attachments()]
    return parts[0]


@pytest.mark.parametrize(
    ("fmt", "mime", "suffix"),
    [("wav", "audio/wav", ".wav"), ("opus", "audio/ogg", ".opus"), ("mp3", "audio/mpeg", ".mp3")],
)
def test_voicemail_in_every_format_reads_back(dovecot_factory, tmp_path, fmt, mime, suffix):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}", formats=(fmt,))
    worker = make_worker(tmp_path / "spool", policy)
    calls = [
        voice("1764260525.11", mailbox="alice", recording=str(MEDIA / "voicemail-dtmf-end.wav")),
        voice(
            "1764260525.12",
            mailbox="bob",
            recording=str(MEDIA / "voicemail-hangup-end.wav"),
            reason="no-answer",
        ),
    ]
    run(deposit_and_drain(worker, calls))

    for call, address, language in ((calls[0], USERS[0], "fr"), (calls[1], USERS[1], "en")):
        raw = dovecot.fetch_all(address)
        assert len(raw) == 1, f"{address}: {len(raw)} messages"
        msg = parse(raw[0])
        assert msg["Message-Context"] == "voice-message"
        assert msg["Message-ID"] == message_id("voice", call.mailbox, call.call_id, "example.test",
                                               key=deposit_key(tmp_path / "spool"))
        assert msg["Auto-Submitted"] == "auto-generated"
        part = audio_part(msg)
        assert part.get_content_type() == mime
        assert part.get_filename().endswith(suffix)
        data = part.get_content()
        source = soundfile.info(call.recording).duration
        decoded = soundfile.info(io.BytesIO(data)).duration
        assert abs(decoded - source) <= 0.050, (fmt, decoded, source)
        assert int(part["Content-Duration"]) == max(1, round(source))
        text = msg.get_body(("plain",)).get_content()
        assert "tel:+33698765432" in text
        assert "Bernard Petit" in text
        if language == "fr":
            assert msg["Subject"].startswith("Message vocal de Bernard Petit")
            assert "la ligne était occupée" in text
            assert "vendredi 27 novembre 2026 à 17:42" in text  # 16:42 UTC in Paris
        else:
            assert msg["Subject"].startswith("Voicemail from Bernard Petit")
            assert "nobody answered" in text
            assert "Friday 27 November 2026 at 17:42" in text
    records = list(Spool(tmp_path / "spool").records())
    assert [r.state for r in records] == ["delivered", "delivered"]


def multipage_g4(path, pages: int = 3):
    frames = []
    for n in range(pages):
        im = Image.new("1", (1728, 2292), 1)
        im.paste(0, (100 + 50 * n, 100, 400 + 50 * n, 300))
        frames.append(im)
    frames[0].save(
        path, save_all=True, append_images=frames[1:], compression="group4", dpi=(204, 196)
    )
    return path


def test_fax_g3_and_multipage_g4_over_unix_socket(dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)
    policy = make_policy(f"unix:{dovecot.lmtp_socket}", fax=("pdf", "tiff"))
    worker = make_worker(tmp_path / "spool", policy)
    g4 = multipage_g4(tmp_path / "three-pages.tif")
    calls = [fax("1764260600.1", mailbox="alice"), fax("1764260600.2", mailbox="bob", tiff=str(g4))]
    run(deposit_and_drain(worker, calls))

    for call, address, pages in ((calls[0], USERS[0], 1), (calls[1], USERS[1], 3)):
        raw = dovecot.fetch_all(address)
        assert len(raw) == 1
        msg = parse(raw[0])
        assert msg["Message-Context"] == "fax-message"
        assert msg["Message-ID"] == message_id("fax", call.mailbox, call.call_id, "example.test",
                                               key=deposit_key(tmp_path / "spool"))
        attachments = {p.get_content_type(): p for p in msg.iter_attachments()}
        assert set(attachments) == {"application/pdf", "image/tiff"}
        reader = pypdf.PdfReader(io.BytesIO(attachments["application/pdf"].get_content()))
        assert len(reader.pages) == pages
        # 1728 pixels at 204 dpi: an A4-wide page (8.47 in = 610 pt), not a distorted one
        assert abs(float(reader.pages[0].mediabox.width) - 1728 / 204 * 72) < 1
        assert attachments["image/tiff"].get_content() == open(call.tiff, "rb").read()
        text = msg.get_body(("plain",)).get_content()
        assert "STOCK INOX" in text
        assert ("Pages : 1" if address == USERS[0] else "Pages: 3") in text


def test_unknown_mailbox_is_parked_with_the_reason(dovecot_factory, tmp_path):
    dovecot = dovecot_factory(users=USERS)  # "ghost" is in the policy, not in Dovecot
    policy = make_policy(f"127.0.0.1:{dovecot.lmtp_port}")
    worker = make_worker(tmp_path / "spool", policy)
    run(
        deposit_and_drain(
            worker, [voice("1764260700.1", mailbox="ghost"), voice("1764260700.2", mailbox="alice")]
        )
    )
    states = {r.deposit.mailbox: r for r in Spool(tmp_path / "spool").records()}
    assert states["ghost"].state == "parked"
    assert states["ghost"].attempts == 1
    assert "550" in states["ghost"].last_error
    assert "ghost@example.test" in states["ghost"].last_error
    assert states["alice"].state == "delivered"
    assert sum(message_ids(dovecot, USERS[0]).values()) == 1
