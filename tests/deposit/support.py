"""Deposit test helpers: a small policy pointing at the test Dovecot, a worker, IMAP counts."""

from __future__ import annotations

import asyncio
import email
import email.policy
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pluggy

from mailcall.core import hookspecs
from mailcall.core.decisions.deposits import FaxMessage, VoiceMessage
from mailcall.core.policy.load import compile_text
from mailcall.core.policy.model import Policy
from mailcall.deposit import delivery_child
from mailcall.deposit.delivery_process import DeliveryProcess
from mailcall.deposit.spool import Spool
from mailcall.deposit.spool_depositor import SpoolDepositor
from mailcall.deposit.worker import SpoolWorker, WorkerSettings
from mailcall.plugins import deposit as plugin
from tests.support import MEDIA
from tests.support.policies import small_policy_text

USERS = ("alice@example.test", "bob@example.test")
FAST = WorkerSettings(retry_base=0.2, retry_max=1.0, poll_interval=0.2, delivery_timeout=20)


def policy_text(address: str, *, method: str = "lmtp", formats=("opus",), fax=("pdf",)) -> str:
    def user(name: str, email: str, extension: str, **more: str) -> dict:
        return {"name": name, "email": email, "profile": "staff", **more,
                "extensions": [extension]}

    return small_policy_text(address, {
        "profiles": {"staff": {"description": "test staff", "features": {
            "voicemail": {"enabled": True, "formats": list(formats)},
            "fax": {"enabled": True, "formats": list(fax)}}}},
        "users": {"alice": user("Alice Martin", "alice@example.test", "201"),
                  "bob": user("Bob Smith", "bob@example.test", "202", language="en"),
                  "ghost": user("Ghost User", "ghost@example.test", "209")},
    }, method=method)


def make_policy(address: str, **kw) -> Policy:
    return compile_text(policy_text(address, **kw), name="<deposit-test>")


def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin, name="deposit")
    return pm


def make_worker(spool_dir: Path, policy: Policy, settings: WorkerSettings = FAST) -> SpoolWorker:
    return SpoolWorker(
        Spool(spool_dir),
        planner=lambda d: plugin.plan_for(policy, d),
        origin=lambda: plugin.origin_for(policy),
        target=lambda: plugin.target_for(policy),
        encoders=plugin.encoders_from(plugin_manager()),
        settings=settings,
    )


def make_delivery_process(spool_dir: Path, policy: Policy,
                          settings: WorkerSettings = FAST) -> DeliveryProcess:
    """The worker as ``mailcall serve`` runs it: in its delivery process, fed by a depositor."""
    depositor = SpoolDepositor(Spool(spool_dir))
    process = DeliveryProcess(
        depositor.spool,
        planner=lambda d: plugin.plan_for(policy, d),
        origin=lambda: plugin.origin_for(policy),
        target=lambda: plugin.target_for(policy),
        encoders=plugin.encoders_from(plugin_manager()),
        settings=settings,
        depositor=depositor,
    )
    depositor.subscribe(process.wake)
    return process


AT = datetime(2026, 11, 27, 16, 42, 5, tzinfo=UTC)


def voice(
    call_id: str,
    *,
    mailbox: str = "alice",
    recording: str | None = None,
    name: str = "Bernard Petit",
    number: str = "+33698765432",
    reason: str = "busy",
) -> VoiceMessage:
    rec = str(MEDIA / "voicemail-dtmf-end.wav") if recording is None else recording
    return VoiceMessage(
        call_id=call_id,
        mailbox=mailbox,
        caller_number=number,
        caller_name=name,
        at=AT,
        reason=reason,
        recording=rec or None,
    )


def fax(
    call_id: str,
    *,
    mailbox: str = "alice",
    tiff: str | None = None,
    status: str = "SUCCESS",
    error: str = "",
) -> FaxMessage:
    path = str(MEDIA / "fax-received-g3.tif") if tiff is None else tiff
    return FaxMessage(
        call_id=call_id,
        mailbox=mailbox,
        caller_number="+33140000299",
        caller_name="Compta Stock Inox",
        at=AT,
        status=status,
        error=error,
        pages=1,
        station_id="STOCK INOX",
        tiff=path or None,
    )


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def message_ids(dovecot, address: str) -> Counter:
    return Counter(parse(raw)["Message-ID"] for raw in dovecot.fetch_all(address))


def run(coro, timeout: float = 120):
    async def bounded():
        async with asyncio.timeout(timeout):
            return await coro

    return asyncio.run(bounded())


def states(spool: Spool) -> dict[str, str]:
    return {r.id: r.state for r in spool.records()}


async def wait_states(spool: Spool, wanted: str, count: int, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while sum(1 for s in states(spool).values() if s == wanted) < count:
            await asyncio.sleep(0.05)


# -- processes, read from /proc (the delivery process and its build processes) ----------


def stat_fields(pid: int) -> list[str]:
    """``/proc/PID/stat`` after the command name: state, ppid, ..., nice at index 16."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def gone(pid: int) -> bool:
    """Exited (a zombie counts: it runs nothing any more)."""
    try:
        return stat_fields(pid)[0] == "Z"
    except OSError:
        return True


def descendants(pid: int) -> set[int]:
    """Every live process under `pid` (its delivery process, their build processes...)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = stat_fields(int(entry.name))
            except OSError:
                continue
            if fields[0] != "Z":
                parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


# -- a delivery process that garbles the pipe first --------------------------------------

GARBLED_FRAMES = (
    b"\x80\x04\x95 not a message",           # not JSON (a pickle, say)
    b'{"type": "wake"}',                      # a message only mailcall serve sends
    b'{"type": "plan-request", "number": "x", "deposit": null}',
    b"[" * 50000,                             # nested past the parser's recursion limit
)


def garbling_child_main(root, settings, encoders, conn, *rest) -> None:
    """The real delivery process, after sending frames that mailcall serve must survive
    (``delivery_child.main`` replaced by this in the serving process, spawn-picklable)."""
    for frame in GARBLED_FRAMES:
        conn.send_bytes(frame)
    delivery_child.main(root, settings, encoders, conn, *rest)
