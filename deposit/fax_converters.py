"""The built-in fax converters (hook ``mailcall_fax_converters``): PDF, and the TIFF as received.

Asterisk's ReceiveFAX (res_fax_spandsp) writes a TIFF-F file: CCITT Group 3
(sometimes Group 4), one IFD per page, non-square pixels (204x196 or 204x98
dpi), FillOrder possibly LSB-first. Workstations cannot open that, so PDF is
made with img2pdf, which embeds 1-bit pages as CCITT G4 without loss and keeps
each page's resolution (so pages have the right paper size). img2pdf decodes
what PDF cannot embed directly (G3, fill order 2) through Pillow/libtiff:
checked on the real ``fax-received-g3.tif``. Should img2pdf refuse a file,
every frame is decoded with Pillow and re-encoded as G4 first.

They are offered by the ``deposit`` plugin exactly as a third-party plugin
offers its own; the spool worker finds every converter in the mapping it is
given under :func:`maker_key`, beside the audio encoders.
"""

from __future__ import annotations

import io
import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import img2pdf
from PIL import Image, ImageSequence

from mailcall.core.contracts import FaxConverter

log = logging.getLogger("mailcall.deposit.fax_message")

KEY_PREFIX = "fax:"


def maker_key(fmt: str) -> str:
    """The key of a fax converter in the worker's mapping of attachment makers.

    Audio encoders are keyed by their format; fax converters by ``fax:FORMAT``, so a
    fax format can never be taken for an audio format of the same name.
    """
    return KEY_PREFIX + fmt


def makers(converters: Mapping[str, FaxConverter]) -> dict[str, FaxConverter]:
    """``fax:FORMAT`` → converter, from FORMAT → converter (one per format: which plugin's
    wins is decided where they are collected, ``collected_by_name``)."""
    return {maker_key(fmt): converter for fmt, converter in converters.items()}


def converters_in(mapping: Mapping[str, Any]) -> dict[str, FaxConverter]:
    """FORMAT → converter, from a worker's mapping of attachment makers."""
    return {key[len(KEY_PREFIX):]: value for key, value in mapping.items()
            if key.startswith(KEY_PREFIX)}


def pdf_bytes(path: str) -> bytes:
    """The PDF of a fax TIFF; img2pdf first, else every page re-encoded as G4 first."""
    try:
        return img2pdf.convert(path)
    except Exception as exc:  # img2pdf raises many kinds; fall back to our own decoding
        log.info("img2pdf refused %s (%s); re-encoding the pages as G4", path, exc)
    return img2pdf.convert([_as_g4(frame) for frame in _frames(Path(path))])


def _frames(path: Path) -> list[Image.Image]:
    with Image.open(path) as im:
        return [frame.copy() for frame in ImageSequence.Iterator(im)]


def _as_g4(frame: Image.Image) -> bytes:
    dpi = frame.info.get("dpi", (204, 196))
    buf = io.BytesIO()
    frame.convert("1").save(buf, format="TIFF", compression="group4", dpi=dpi)
    return buf.getvalue()


@dataclass(frozen=True, slots=True)
class PdfConverter:
    format: str = "pdf"
    mime_type: str = "application/pdf"
    extension: str = "pdf"

    def convert(self, tiff_path: str, out_path: str) -> None:
        Path(out_path).write_bytes(pdf_bytes(tiff_path))


@dataclass(frozen=True, slots=True)
class TiffConverter:
    """The file as ReceiveFAX wrote it, for archives and fax software."""

    format: str = "tiff"
    mime_type: str = "image/tiff"
    extension: str = "tif"

    def convert(self, tiff_path: str, out_path: str) -> None:
        shutil.copyfile(tiff_path, out_path)


BUILTIN: tuple[FaxConverter, ...] = (PdfConverter(), TiffConverter())
