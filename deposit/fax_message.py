"""A received fax as a standard fax message (RFC 3458 ``Message-Context: fax-message``).

The file ReceiveFAX wrote is checked here (present, not empty, readable, its pages
counted); each attachment the plan names (``fax.formats``, PDF by default) is made
by the fax converter of that format (:mod:`mailcall.deposit.fax_converters` for
the built-in PDF and TIFF, or a plugin's, hook ``mailcall_fax_converters``).

A failed reception (FAXSTATUS other than SUCCESS, or an empty, missing or
unreadable file, or a converter that fails) still produces a message: a notice
with the reason, so the user can ask the sender to try again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Mapping
from email.message import EmailMessage
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from mailcall.core.contracts import FaxConverter
from mailcall.core.decisions.deposits import FaxMessage
from mailcall.core.decisions.plans import DepositPlan
from mailcall.core.text import display_text

from . import wording
from .fax_converters import BUILTIN, pdf_bytes
from .headers import MAX_NAME, clean_number, message_id, set_common_headers
from .voice_message import Origin, caller_label, caller_lines

log = logging.getLogger(__name__)

DEFAULT_FORMATS = ("pdf",)
"""What a fax is attached as when the plan names no format."""


class FaxProblem(Exception):
    """The received file cannot be turned into a document (reason in the message)."""


def tiff_pages(path: str | os.PathLike) -> int:
    with Image.open(path) as im:
        return getattr(im, "n_frames", 1)


def checked_pages(path: str | os.PathLike) -> int:
    """The page count of a fax TIFF that exists and is readable, or :class:`FaxProblem`."""
    p = Path(path)
    if not p.is_file():
        raise FaxProblem(f"the fax file {p} does not exist")
    if p.stat().st_size == 0:
        raise FaxProblem(f"the fax file {p} is empty")
    try:
        return tiff_pages(p)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise FaxProblem(f"the fax file cannot be read ({exc})") from exc


def tiff_to_pdf(path: str | os.PathLike) -> tuple[bytes, int]:
    """(PDF bytes, page count) of a fax TIFF, or :class:`FaxProblem`."""
    pages = checked_pages(path)
    try:
        return pdf_bytes(str(path)), pages
    except Exception as exc:
        raise FaxProblem(f"the fax file cannot be converted ({exc})") from exc


Attachment = tuple[bytes, FaxConverter]


def _attachments(tiff: str, formats: tuple[str, ...],
                 converters: Mapping[str, FaxConverter], workdir: str) -> list[Attachment]:
    """Each format's attachment, in the plan's order, or :class:`FaxProblem`.

    A format no converter makes (possible only when the worker was given fewer
    converters than the policy was checked against) is replaced by the TIFF as
    received, so that a fax is never lost for want of a converter.
    """
    out: list[Attachment] = []
    for fmt in formats:
        converter = converters.get(fmt)
        if converter is None:
            log.error("no fax converter makes %r (mailcall_fax_converters); attaching the "
                      "TIFF as received instead", fmt)
            converter = converters.get("tiff") or BUILTIN[1]
        out_path = Path(workdir) / f"fax.{converter.format}.{converter.extension}"
        try:
            converter.convert(tiff, str(out_path))
            data = out_path.read_bytes()
        except Exception as exc:
            raise FaxProblem(f"the fax file cannot be converted to {converter.format} "
                             f"({exc})") from exc
        if all(c.format != converter.format for _, c in out):
            out.append((data, converter))
    return out


def build_fax_message(
    deposit: FaxMessage,
    plan: DepositPlan,
    origin: Origin,
    *,
    tiff: str | None,
    key: bytes,
    msgid: str | None = None,
    converters: Mapping[str, FaxConverter] | None = None,
    workdir: str | None = None,
) -> EmailMessage:
    """The complete message for `deposit`; `tiff` is the spool's copy of the received file,
    `key` the deposit key that seals it (:mod:`mailcall.deposit.seal`), `msgid` the
    Message-ID an earlier attempt gave it (a rebuild keeps it, so dedupe still works).
    `converters` (format → converter; default: the built-in ones) make the attachments,
    writing into `workdir` (default: a temporary directory)."""
    language = plan.language
    name = display_text(deposit.caller_name, MAX_NAME)
    number = clean_number(deposit.caller_number)
    station = display_text(deposit.station_id, 40)
    local = deposit.at.astimezone(origin.timezone)
    who = caller_label(language, name, number or station)

    if converters is None:
        converters = {c.format: c for c in BUILTIN}
    failure: str | None = None
    attachments: list[Attachment] = []
    pages = 0
    status = display_text(deposit.status, 40).upper()
    if status != "SUCCESS":
        failure = display_text(deposit.error, 300) or f"FAXSTATUS={status or 'unknown'}"
    elif not tiff:
        failure = "no fax file was written"
    else:
        try:
            pages = checked_pages(tiff)
            formats = plan.fax_formats or DEFAULT_FORMATS
            if workdir is None:
                with tempfile.TemporaryDirectory() as work:
                    attachments = _attachments(tiff, formats, converters, work)
            else:
                attachments = _attachments(tiff, formats, converters, workdir)
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
    stem = f"fax-{local:%Y%m%d-%H%M%S}"
    for data, converter in attachments:
        maintype, _, subtype = converter.mime_type.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype or "octet-stream",
                           filename=f"{stem}.{converter.extension}")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # the stdlib adds it to each part; only the top needs it
    return msg
