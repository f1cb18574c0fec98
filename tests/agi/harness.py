"""A real AGI server with the built-in handlers, a test policy and a recording depositor."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from mailcall.agi.server import AgiServer
from mailcall.agi.service import collect_handlers
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import compile_text
from mailcall.plugins import agi as agi_plugin
from mailcall.plugins import rules as rules_plugin

PARIS = ZoneInfo("Europe/Paris")
OFFICE_HOURS = datetime(2026, 11, 25, 10, 0, tzinfo=PARIS)  # a Wednesday
DURING_EMMA_ABSENCE = datetime(2026, 12, 2, 10, 0, tzinfo=PARIS)

# PIN 2468 (the example policy's hash).
PIN_HASH = "scrypt$16384$8$1$Ggf9rS/Mm6pnUCX+DeQcUw==$DksPviOKaXkzxp4xlo0eeensh6lxvXwGybbRqNK7v8w="

POLICY = f"""
[organisation]
name = "Stock Inox"
domain = "stockinox.example"
timezone = "Europe/Paris"
language = "fr"
country = "FR"
schedule = "office"

[telephony]
endpoint = "PJSIP/{{extension}}"
external = "PJSIP/{{number}}@trunk"
ring_time = 20

[schedules.office]
monday    = ["08:30-12:30", "13:30-18:00"]
tuesday   = ["08:30-12:30", "13:30-18:00"]
wednesday = ["08:30-12:30", "13:30-18:00"]
thursday  = ["08:30-12:30", "13:30-18:00"]
friday    = ["08:30-12:30", "13:30-17:00"]

[profiles.office]
description = "Administrative staff"
[profiles.office.features]
voicemail = {{ enabled = true, formats = ["wav"], max_seconds = 120 }}
reroute = {{ enabled = false }}
greetings = ["unavailable"]

[profiles.reception]
extends = "office"
description = "Reception"
[profiles.reception.features]
reroute = {{ enabled = true, on = ["busy", "no-answer", "unavailable", "absent"] }}

[profiles.sales]
extends = "office"
description = "Sales"
[profiles.sales.features]
reroute = {{ enabled = true, mobile = true }}
greetings = ["unavailable", "busy", "absence"]

[users.alice]
name = "Alice Martin"
email = "alice@stockinox.example"
profile = "sales"
extensions = ["201"]
numbers = ["+33140000201"]
mobile = "+33612345678"
backups = ["bernard", "@reception"]
pin = "{PIN_HASH}"

[users.bernard]
name = "Bernard Petit"
email = "bernard@stockinox.example"
profile = "sales"
extensions = ["202"]
backups = ["@reception"]
overrides = {{ reroute = {{ mobile = false }} }}

[users.carole]
name = "Carole Dubois"
email = "carole@stockinox.example"
profile = "office"
extensions = ["203"]

[users.david]
name = "David Leroy"
email = "david@stockinox.example"
profile = "reception"
extensions = ["204"]

[users.emma]
name = "Emma Laurent"
email = "emma@stockinox.example"
profile = "sales"
extensions = ["205"]
backups = ["@reception"]

[groups.reception]
name = "Accueil"
members = ["carole", "david"]
strategy = "all"
ring_time = 20
mailbox = "carole"
extensions = ["200"]

[[absences]]
user = "emma"
from = 2026-12-01T00:00:00
until = 2026-12-13T00:00:00
backup = "bernard"
"""


class RecordingDepositor:
    """Test double for the spool: keeps every message, and what its recording held."""

    def __init__(self, fail: bool = False) -> None:
        self.messages: list = []
        self.audio: list[bytes | None] = []
        self.fail = fail

    async def accept(self, message) -> str:
        if self.fail:
            raise OSError("spool disk full")
        self.messages.append(message)
        path = getattr(message, "recording", None) or getattr(message, "tiff", None)
        self.audio.append(Path(path).read_bytes() if path else None)
        return f"spool-{len(self.messages)}"


def make_runtime(tmp: Path, at: datetime = OFFICE_HOURS, policy_text: str = POLICY,
                 depositor: RecordingDepositor | None = None) -> Runtime:
    pm = make_plugin_manager(entrypoints=False)
    pm.register(agi_plugin, name="agi")
    pm.register(rules_plugin, name="rules")
    policy = compile_text(policy_text, name="test-policy.toml")
    runtime = Runtime(policy, pm, overrides={
        "spool_dir": str(tmp / "spool"), "greetings_dir": str(tmp / "greetings"),
    })
    runtime.clock = lambda: at
    runtime.depositor = depositor if depositor is not None else RecordingDepositor()
    return runtime


@contextlib.asynccontextmanager
async def serving(runtime: Runtime, **kwargs):
    server = AgiServer(runtime, collect_handlers(runtime), host="127.0.0.1", port=0, **kwargs)
    await server.start()
    try:
        yield server
    finally:
        await server.stop(2.0)


def run(coro):
    return asyncio.run(coro)


def ensure_fds(needed: int) -> None:
    """Raise the soft open-files limit for tests that hold thousands of sockets."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise AssertionError(
            f"this test needs {needed} open files but the hard limit is {hard}: "
            "raise it (ulimit -Hn) on the test machine")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))
