"""`mailcall serve`: start every plugin's services, reload on SIGHUP, stop cleanly on SIGTERM.

The core knows no adapter: the FastAGI server, the Sieve bridge and the spool
worker are services offered by plugins, so a site can run only what it needs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pluggy

from mailcall.core.contracts import Depositor, Service
from mailcall.core.errors import PolicyInvalid, ServiceStartError
from mailcall.core.host.collect import chosen, collected
from mailcall.core.host.runtime import Runtime, freeze_snapshot
from mailcall.core.policy.load import load_policy
from mailcall.core.policy.model import Policy

log = logging.getLogger("mailcall.serve")
STOP_GRACE = 30.0


def serve(policy: Policy, pm: pluggy.PluginManager, *, policy_path: Path | None,
          overrides: Mapping[str, Any], log_level: str = "INFO") -> int:
    logging.basicConfig(level=log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = Runtime(policy, pm, policy_path=policy_path, overrides=overrides)
    freeze_snapshot()
    return asyncio.run(run(runtime))


async def start_services(runtime: Runtime) -> list[Any]:
    """Pick the depositor, then start every service; on failure stop those already started."""
    runtime.depositor = chosen(
        runtime.pm, "mailcall_depositor", Depositor,
        expected="a Depositor (async accept(message) -> spool id)",
        offered="the depositor (mailcall_depositor)",
        fix="keep one: disable the others (MAILCALL_DISABLE_PLUGINS=name,...), or have them "
            "return None", runtime=runtime)
    services = collected(runtime.pm, "mailcall_services", Service, expected=(
        "a Service (name: str, async start(), async stop(grace))"), runtime=runtime)
    started: list[Any] = []
    try:
        for service in services:
            await service.start()
            started.append(service)
            log.info("started %s", service.name)
    except BaseException:
        await stop_services(started, grace=1.0)
        raise
    return started


async def stop_services(services: list[Any], grace: float = STOP_GRACE) -> None:
    """Stop in reverse start order within one overall `grace`, as systemd's stop timeout
    counts for the whole process, not per service."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    for service in reversed(services):
        try:
            await service.stop(max(0.5, deadline - loop.time()))
            log.info("stopped %s", service.name)
        except Exception:
            log.exception("stopping %s failed", service.name)


def reload(runtime: Runtime) -> bool:
    """Swap in the policy on disk, or keep the running one if the new one is invalid."""
    if runtime.policy_path is None:
        return False
    try:
        runtime.replace_policy(load_policy(runtime.policy_path, pm=runtime.pm))
    except PolicyInvalid as exc:
        log.error("reload refused, running policy kept:\n%s", exc.report())
        return False
    log.info("policy reloaded from %s", runtime.policy_path)
    return True


async def run(runtime: Runtime) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload, runtime)
    try:
        services = await start_services(runtime)
    except (OSError, ServiceStartError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    names = ", ".join(s.name for s in services) or "no service (no plugin offers one)"
    log.info("mailcall serving %s with policy %s", names, runtime.policy_path)
    await stop.wait()
    log.info("stopping: letting calls and deliveries in progress finish (at most %ss)",
             STOP_GRACE)
    await stop_services(services)
    return 0
