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
from tests.support.policies import DROP, example_policy, example_policy_text

PARIS = ZoneInfo("Europe/Paris")
OFFICE_HOURS = datetime(2026, 11, 25, 10, 0, tzinfo=PARIS)  # a Wednesday
DURING_EMMA_ABSENCE = datetime(2026, 12, 2, 10, 0, tzinfo=PARIS)


CHANGES = {
    # What these tests rely on, against the example policy (core/data/small-company.toml):
    # WAV only and a 2-minute limit, and nobody but alice with a mobile to ring.
    "profiles": {"office": {"features": {"voicemail": {
        "enabled": True, "formats": ["wav"], "max_seconds": 120}}}},
    "users": {"bernard": {"mobile": DROP, "preferred_medium": "email"},
              "emma": {"mobile": DROP, "preferred_medium": "email"},
              "david": {"language": DROP}},
}
POLICY = example_policy_text(CHANGES)
PIN_HASH = example_policy()["users"]["alice"]["pin"]
"""alice's PIN, 2468, as the example policy stores it."""


def policy_text(*changes: dict) -> str:
    """The harness policy with more `changes` (see tests/support/policies.py)."""
    return example_policy_text(CHANGES, *changes)


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
