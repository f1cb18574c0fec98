"""The notification side of `mailcall serve`, alone in a process, for the kill -9 test.

    python -m tests.notifications.notifier_main WORKDIR RELAY_PORT [submit]

Wired as the channels plugin wires it (``notification_service``), the queue in
WORKDIR/spool, logging as ``mailcall serve`` logs. With ``submit``, one SMS
notification is submitted and ``ACCEPTED`` printed once the queue says it is
on disk; ``STARTED`` once the service runs. SIGTERM stops it cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from mailcall.core.decisions.plans import Notify
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import compile_text
from mailcall.notifications import MailNotice, Retry
from mailcall.plugins import channels as channels_plugin
from mailcall.plugins.channels import notification_service
from tests.sieve.support import OFFICE_HOURS, policy_text

NOTICE = MailNotice(
    notifications=(Notify("alice", "sms", "+33612345678", "test"),),
    recipient="alice@stockinox.example", sender="bob@example.net",
    message_id="<kill-1@example.net>", subject="Devis inox", from_header="Bob Client")


async def main(work: Path, relay_port: int, submit: bool) -> int:
    policy = compile_text(policy_text(socket=work / "s", smtp_port=relay_port,
                                      file_path=work / "audit.jsonl", spool=work / "spool"))
    pm = make_plugin_manager(entrypoints=False)
    pm.register(channels_plugin, name="channels")
    runtime = Runtime(policy, pm)
    runtime.clock = lambda: OFFICE_HOURS
    dispatcher = notification_service(runtime)
    dispatcher.retry = Retry(first=0.3, cap=1.0, deadline=120)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await dispatcher.start()
    print("STARTED", flush=True)
    if submit:
        if await dispatcher.submit(NOTICE):
            print("ACCEPTED", flush=True)
    await stop.wait()
    await dispatcher.stop(5)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]), "submit" in sys.argv[3:])))
