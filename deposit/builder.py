"""Turning a spooled deposit into the bytes of its message, in a worker process.

Encoding audio and rasterising faxes is CPU work; it runs in a process pool so
that neither the GIL nor a slow encoder can delay the FastAGI event loop. The
job and its result are plain picklable values; the result is written into the
spool (atomically) by the child itself, so only a path crosses back. The
deposit key that seals the message is read from the spool by the child too.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailcall.core.contracts import FaxConverter
from mailcall.core.decisions.plans import DepositPlan

from .fax_message import build_fax_message
from .headers import serialise
from .mail_protocol import dot_stuff
from .seal import deposit_key
from .spool import Spool
from .spool_record import SpoolRecord
from .voice_message import Origin, build_voice_message


@dataclass(frozen=True, slots=True)
class BuildJob:
    spool_root: str
    record: SpoolRecord
    plan: DepositPlan
    origin: Origin
    encoder: Any | None
    """The audio encoder for the plan's format (None: attach the WAV as recorded)."""
    fax_converters: Mapping[str, FaxConverter] | None = None
    """Format → fax converter, for a fax (None: the built-in ones)."""


def build(job: BuildJob) -> tuple[str, str]:
    """Build, serialise and store the message; returns (path of the .eml, Message-ID)."""
    spool = Spool(job.spool_root)
    key = deposit_key(spool.root)  # read here, in the build process: never pickled, never sent
    record = job.record
    deposit = record.deposit
    payload = str(spool.root / record.payload) if record.payload else None
    if record.kind == "voice":
        with tempfile.TemporaryDirectory(dir=spool.root / "tmp") as work:
            msg = build_voice_message(
                deposit, job.plan, job.origin, recording=payload, encoder=job.encoder,
                workdir=work, key=key, msgid=record.message_id,
            )
    else:
        with tempfile.TemporaryDirectory(dir=spool.root / "tmp") as work:
            msg = build_fax_message(deposit, job.plan, job.origin, tiff=payload, key=key,
                                    msgid=record.message_id, converters=job.fax_converters,
                                    workdir=work)
    data = serialise(msg)
    # The wire form too, so that no CPU work on the message is left for the event loop's
    # process (bytes.replace on a 1 MB WAV message holds the GIL for milliseconds).
    # Written first: the .eml's existence means both are complete.
    spool.write_wire(record.id, dot_stuff(data))
    path = spool.write_message(record.id, data)
    return str(Path(path)), str(msg["Message-ID"])
