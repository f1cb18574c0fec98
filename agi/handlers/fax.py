"""``AGI(agi://host/fax,NUMBER,FILE)`` (or ``fax?mailbox=USER&file=FILE``): after ReceiveFAX.

ReceiveFAX leaves its outcome in channel variables (FAXSTATUS, FAXERROR,
FAXPAGES, FAXBITRATE, FAXRESOLUTION, REMOTESTATIONID; see the
``fax-received`` trace). A failed fax is deposited too, with Asterisk's reason,
so the recipient learns that someone tried. What arrived is handed to the
deposit path. NUMBER is read as routing reads it (:mod:`mailcall.core.policy.numbers`:
extension, E.164, or the national form a trunk delivers, ``0140000299``).

Which file is mailed is decided here, not by the arguments: the only TIFF this
call may hand over is the one the dialplan told ReceiveFAX to write for *this*
channel, ``{spool_dir}/rec/fax-{agi_uniqueid}.tif`` (``MAILCALL_FAXFILE`` in
``contrib/asterisk/extensions-mailcall.conf``; ``agi_uniqueid`` is the
channel's ``${UNIQUEID}``). The FILE argument is only compared with that name.
Why not merely "inside rec/": the arguments are not trustworthy. A dialled
number such as ``201,/var/spool/mailcall/rec/vm-X.wav`` routed to
``[mailcall-fax]`` ends up as AGI arguments ``201`` and that path (Asterisk
splits application arguments on commas after expanding ``${EXTEN}``), and
``rec/`` also holds other callers' voicemail. A FILE that is not this call's
fax file is refused: logged, and deposited as a failed fax (FAX_FAILED), the
file named is never read.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from pathlib import Path
from typing import Any

from mailcall.core.decisions.deposits import FaxMessage
from mailcall.core.policy import numbers

from .. import dialplan_variables as dv
from ..driver import inline
from ..folders import recordings_folder
from ..safety import caller_name, caller_text, inside, safe_component
from ..session import AgiSession

log = logging.getLogger("mailcall.agi.fax")


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def expected_fax_file(runtime: Any, uniqueid: str) -> Path | None:
    """``{spool_dir}/rec/fax-{uniqueid}.tif``: where the dialplan has ReceiveFAX write.

    None when the uniqueid is not a plain file-name word: then no file is this
    call's. Asterisk makes them ``1795887828.27`` or ``systemname-1795887828.27``
    (channel.c; at most ``AST_MAX_PUBLIC_UNIQUEID``, 149 characters), but a
    channel created through ARI or AMI can be given any text as its id.
    """
    if not uniqueid or safe_component(uniqueid, limit=150) != uniqueid:
        return None
    return recordings_folder(runtime.setting("spool_dir")) / f"fax-{uniqueid}.tif"


def _same_file_name(raw: str, expected: Path) -> bool:
    """True when `raw` names `expected` (spelt differently at most: ``//``, symlinked dirs)."""
    if os.path.normpath(raw) == os.path.normpath(expected):
        return True
    try:
        return Path(raw).is_absolute() and Path(raw).resolve() == expected.resolve()
    except (OSError, RuntimeError, ValueError):
        return False


def _checked_tiff(runtime: Any, raw: str | None, uniqueid: str) -> tuple[str | None, str, bool]:
    """(path, problem, refused): this call's own fax file, if FILE names it and it is a file.

    `refused` says the FILE given was not this call's: someone tampered with the
    arguments (or the dialplan is not the shipped one), worth a warning.
    """
    expected = expected_fax_file(runtime, uniqueid)
    if expected is None:
        return None, (f"no fax file can belong to call id {uniqueid[:80]!r}: it is not made "
                      "only of letters, digits, '.', '_' and '-' (a channel id given through "
                      "ARI or AMI?), so it cannot name a file safely"), bool(raw)
    if raw and not _same_file_name(raw, expected):
        return None, (f"fax file {raw[:200]!r} refused: this call's fax file is {expected} "
                      f"(the dialplan's {dv.FAXFILE})"), True
    rec = expected.parent
    try:
        st = os.lstat(expected)
    except FileNotFoundError:
        return None, f"fax file {expected} does not exist (ReceiveFAX wrote nothing)", False
    except OSError as exc:
        return None, f"fax file {expected} cannot be read: {exc.strerror}", False
    if not stat.S_ISREG(st.st_mode) or not inside(rec, expected):
        return None, f"fax file {expected} is not a regular file in {rec}: refused", True
    return str(expected.resolve()), "", False


def fax_number(env: Any) -> tuple[str, str]:
    """(number, where it came from): the fax number (or user id) the fax is for.

    The dialplan names it (AGI argument 1, or ``?mailbox=``); only without
    either are the extension and the DNID Asterisk reports used.
    """
    for value, where in ((env.arg(1), "AGI argument 1"), (env.param("mailbox"), "?mailbox="),
                         (env.extension, "the extension"), (env.dnid, "the DNID")):
        if value:
            if where.startswith("the") and value == "s":
                continue  # a Gosub's extension, not a number
            return value, where
    return "", "no AGI argument"


def find_mailbox(policy: Any, env: Any) -> str | None:
    """The mailbox the fax goes to: the number's owner, or the owning group's mailbox."""
    return numbers.find_mailbox(policy, fax_number(env)[0])


@inline
async def handler(session: AgiSession, runtime: Any) -> str:
    env = session.env
    policy = runtime.policy
    mailbox = find_mailbox(policy, env)
    await session.set_language(numbers.language_of(policy, mailbox))
    status = (await session.get_variable(dv.FAXSTATUS) or "").strip().upper() or "UNKNOWN"
    error = await session.get_variable(dv.FAXERROR) or ""
    pages = _int(await session.get_variable(dv.FAXPAGES))
    bitrate = _int(await session.get_variable(dv.FAXBITRATE))
    resolution = await session.get_variable(dv.FAXRESOLUTION) or ""
    station = await session.get_variable(dv.REMOTESTATIONID) or ""
    raw_path = env.arg(2) or env.param("file") or await session.get_variable(dv.FAX_FILE)
    if mailbox is None:
        number, where = fax_number(env)
        log.warning("fax on %s, call %s: nobody in the policy has fax number %r (%s), so it "
                    "was not mailed; whatever ReceiveFAX wrote stays in %s. Give that number "
                    "to a user or group (numbers = [...], extensions = [...]) or pass a user id "
                    "as the first AGI argument", env.channel, caller_text(env.uniqueid),
                    caller_text(number), where,
                    expected_fax_file(runtime, env.uniqueid) or "rec/")
        await session.set_status("NO_MAILBOX")
        return "NO_MAILBOX"
    loop = asyncio.get_running_loop()
    tiff, problem, refused = await loop.run_in_executor(None, _checked_tiff, runtime,
                                                        raw_path, env.uniqueid)
    if refused:
        log.warning("fax on %s, call %s, for mailbox %s: %s. Nothing was read; the call is "
                    "reported as a failed fax. If this was a real fax: the dialplan must pass "
                    f"${{{dv.FAXFILE}}} unchanged and {dv.SPOOL} must be the policy's "
                    "spool_dir (contrib/asterisk/extensions-mailcall.conf)",
                    env.channel, caller_text(env.uniqueid), mailbox, caller_text(problem, 400))
        # The recipient is told a fax failed, not which path someone tried to get mailed.
        problem = "the fax file given to mailcall was not this call's (see mailcall's log)"
    if status == "SUCCESS" and tiff is None:
        status, error = "FAILED", problem
    elif problem and status == "SUCCESS":
        error = problem
    message = FaxMessage(
        call_id=env.uniqueid,
        mailbox=mailbox,
        caller_number=caller_text(env.callerid),
        caller_name=caller_name(env.calleridname),
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
