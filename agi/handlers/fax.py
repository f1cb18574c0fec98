"""``agi://host/fax?mailbox=USER&file=PATH``: after ReceiveFAX, deposit what arrived.

ReceiveFAX leaves its outcome in channel variables (FAXSTATUS, FAXERROR,
FAXPAGES, FAXBITRATE, FAXRESOLUTION, REMOTESTATIONID; see the
``fax-received`` trace). A failed fax is deposited too, with Asterisk's reason,
so the recipient learns that someone tried. The TIFF path is accepted only
when it resolves inside ``{spool_dir}/rec``: the dialplan (or whoever can set
the query) cannot make mailcall read and mail an arbitrary file.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from mailcall.core.deposits import FaxMessage

from ..driver import inline
from ..safety import caller_text, inside
from ..session import AgiSession

log = logging.getLogger("mailcall.agi.fax")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _checked_tiff(runtime: Any, raw: str | None) -> tuple[str | None, str]:
    """(path, problem): the TIFF if it is a regular file inside the spool's rec dir."""
    if not raw:
        return None, "no fax file was given"
    rec = Path(runtime.setting("spool_dir")) / "rec"
    path = Path(raw)
    if not path.is_absolute() or not inside(rec, path):
        return None, f"fax file {raw[:200]!r} is outside {rec}"
    if not path.is_file():
        return None, f"fax file {raw[:200]!r} does not exist"
    return str(path.resolve()), ""


def find_mailbox(policy: Any, env: Any) -> str | None:
    for candidate in (env.arg(1), env.param("mailbox"), env.extension, env.dnid):
        if not candidate:
            continue
        if candidate in policy.users:
            return candidate
        owner = policy.by_extension.get(candidate) or policy.by_number.get(candidate)
        if isinstance(owner, str):
            if owner in policy.users:
                return owner
            group = policy.groups.get(owner.lstrip("@"))
            if group is not None and group.mailbox:
                return group.mailbox
    return None


@inline
async def handler(session: AgiSession, runtime: Any) -> str:
    env = session.env
    policy = runtime.policy
    mailbox = find_mailbox(policy, env)
    status = (await session.get_variable("FAXSTATUS") or "").strip().upper() or "UNKNOWN"
    error = await session.get_variable("FAXERROR") or ""
    pages = _int(await session.get_variable("FAXPAGES"))
    bitrate = _int(await session.get_variable("FAXBITRATE"))
    resolution = await session.get_variable("FAXRESOLUTION") or ""
    station = await session.get_variable("REMOTESTATIONID") or ""
    raw_path = env.arg(2) or env.param("file") or await session.get_variable("FAXFILE")
    if mailbox is None:
        log.warning("fax on %s: no mailbox for %r; set the first AGI argument to a user id",
                    env.channel, env.extension)
        await session.set_status("NO_MAILBOX")
        return "NO_MAILBOX"
    loop = asyncio.get_running_loop()
    tiff, problem = await loop.run_in_executor(None, _checked_tiff, runtime, raw_path)
    if status == "SUCCESS" and tiff is None:
        status, error = "FAILED", problem
    elif problem and status == "SUCCESS":
        error = problem
    message = FaxMessage(
        call_id=env.uniqueid,
        mailbox=mailbox,
        caller_number=caller_text(env.callerid),
        caller_name=caller_text(env.calleridname),
        at=runtime.now(),
        status=status,
        error=caller_text(error, 200),
        pages=pages,
        station_id=caller_text(station, 40),
        tiff=tiff,
        bitrate=bitrate,
        resolution=caller_text(resolution, 40),
    )
    try:
        await runtime.deposit(message)
    except Exception:
        log.exception("fax deposit FAILED for mailbox %s, call %s; the file is kept at %s",
                      mailbox, env.uniqueid, tiff or "(none)")
        await session.set_status("DEPOSIT_FAILED", voicemail=mailbox)
        return "DEPOSIT_FAILED"
    outcome = "FAX" if status == "SUCCESS" else "FAX_FAILED"
    await session.set_status(outcome, voicemail=mailbox)
    return outcome
