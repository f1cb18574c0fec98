"""A received fax as a standard fax message (RFC 3458 ``Message-Context: fax-message``).

Asterisk's ReceiveFAX (res_fax_spandsp) writes a TIFF-F file: CCITT Group 3
(sometimes Group 4), one IFD per page, non-square pixels (204x196 or 204x98
dpi), FillOrder possibly LSB-first. Workstations cannot open that, so the fax
is converted to PDF with img2pdf, which embeds 1-bit pages as CCITT G4 without
loss and keeps each page's resolution (so pages have the right paper size).
img2pdf decodes what PDF cannot embed directly (G3, fill order 2) through
Pillow/libtiff: checked on the real ``fax-received-g3.tif``. Should img2pdf
refuse a file, every frame is decoded with Pillow and re-encoded as G4 first.

A failed reception (FAXSTATUS other than SUCCESS, or an empty, missing or
unreadable file) still produces a message: a notice with the reason, so the
user can ask the sender to try again.
"""

from __future__ import annotations

import io
import logging
import os
from email.message import EmailMessage
from pathlib import Path

import img2pdf
from PIL import Image, ImageSequence, UnidentifiedImageError

from mailcall.core.decisions.deposits import FaxMessage
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.text import display_text

from . import wording
from .headers import MAX_NAME, clean_number, message_id, set_common_headers
from .voice_message import Origin, caller_label, caller_lines

log = logging.getLogger(__name__)


class FaxProblem(Exception):
    """The received file cannot be turned into a document (reason in the message)."""


def tiff_pages(path: str | os.PathLike) -> int:
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)


def tiff_to_pdf(path: str | os.PathLike) -> tuple[bytes, int]:
    """(PDF bytes, page count) of a fax TIFF, or :class:`FaxProblem`."""
    p = Path(path)
    if not p.is_file():
        raise FaxProblem(f"the fax file {p} does not exist")
    if p.stat().st_size == 0:
        raise FaxProblem(f"the fax file {p} is empty")
    try:
        pages = tiff_pages(p)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FaxProblem(f"the fax file cannot be read ({exc})") from exc
    try:
        return img2pdf.convert(str(p)), pages
    except Exception as exc:  # img2pdf raises many kinds; fall back to our own decoding
        log.info("img2pdf refused %s (%s); re-encoding the pages as G4", p, exc)
    try:
        return img2pdf.convert([_as_g4(frame) for frame in _frames(p)]), pages
    except Exception as exc:
        raise FaxProblem(f"the fax file cannot be converted ({exc})") from exc


def _frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as im:
        return [frame.copy() for frame in ImageSequence.Iterator(im)]


def _as_g4(frame: Image.Image) -> bytes:
    dpi = frame.info.get("dpi", (204, 196))
    buf = io.BytesIO()
    frame.convert("1").save(buf, format="TIFF", compression="group4", dpi=dpi)
    return buf.getvalue()


def build_fax_message(
    deposit: FaxMessage,
    plan: DepositPlan,
    origin: Origin,
    *,
    tiff: str | None,
    key: bytes,
    msgid: str | None = None,
) -> EmailMessage:
    """The complete message for `deposit`; `tiff` is the spool's copy of the received file,
    `key` the deposit key that seals it (:mod:`mailcall.deposit.seal`), `msgid` the
    Message-ID an earlier attempt gave it (a rebuild keeps it, so dedupe still works)."""
    language = plan.language
    name = display_text(deposit.caller_name, MAX_NAME)
    number = clean_number(deposit.caller_number)
    station = display_text(deposit.station_id, 40)
    local = deposit.at.astimezone(origin.timezone)
    who = caller_label(language, name, number or station)

    failure: str | None = None
    pdf: bytes | None = None
    pages = 0
    status = display_text(deposit.status, 40).upper()
    if status != "SUCCESS":
        failure = display_text(deposit.error, 300) or f"FAXSTATUS={status or 'unknown'}"
    elif not tiff:
        failure = "no fax file was written"
    else:
        try:
            pdf, pages = tiff_to_pdf(tiff)
        except FaxProblem as exc:
            failure = str(exc)
    if failure:
        log.warning("fax %s: %s; sending a notice", deposit.call_id, failure)

    lines = [wording.text(language, "fax_failed_intro" if failure else "fax_intro"), ""]
    lines += caller_lines(language, name, number, origin.domain)
    if station:
        lines.append(wording.text(language, "station", station=station))
    lines.append(wording.text(language, "when", when=wording.when(language, local)))
    if failure:
        lines += [
            "",
            wording.text(language, "fax_failed_reason", reason=failure),
            wording.text(language, "fax_failed_advice"),
        ]
        subject = wording.text(language, "fax_failed_subject", who=who)
    else:
        lines += [
            wording.text(language, "fax_pages", pages=pages),
            "",
            wording.text(language, "fax_attached"),
        ]
        subject = wording.text(
            language, "fax_subject", who=who, pages=wording.pages(language, pages)
        )

    msg = EmailMessage()
    msg.set_content(
        "\n".join(lines) + "\n", subtype="plain", charset="utf-8", cte="quoted-printable"
    )
    set_common_headers(
        msg,
        context="fax-message",
        subject=subject,
        sender=origin.sender,
        sender_name=name or station or number or origin.sender_name,
        recipient=plan.recipient,
        recipient_name=plan.display_name,
        msgid=msgid or message_id("fax", deposit.mailbox, deposit.call_id, origin.domain,
                                  key=key),
        date=local,
        key=key,
    )
    if pdf is not None:
        stem = f"fax-{local:%Y%m%d-%H%M%S}"
        formats = plan.fax_formats or ("pdf",)
        if "pdf" in formats:
            msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"{stem}.pdf")
        if "tiff" in formats:
            assert tiff is not None
            msg.add_attachment(
                Path(tiff).read_bytes(), maintype="image", subtype="tiff", filename=f"{stem}.tif"
            )
    for part in msg.iter_parts():
        del part["MIME-Version"]  # the stdlib adds it to each part; only the top needs it
    return msg
