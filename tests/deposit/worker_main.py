"""The deposit side of ``mailcall serve`` alone in a process, for the SIGKILL test:
``python -m tests.deposit.worker_main SPOOL_DIR POLICY_FILE``.

Wired exactly as the deposit plugin wires it: a depositor and the delivery process
(the worker in a child process). Prints ``worker started <child pid>``; runs until
SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from mailcall.core.policy.load import load_policy
from tests.deposit.support import FAST, make_delivery_process


async def main(spool_dir: Path, policy_file: Path) -> None:
    policy = load_policy(policy_file, dropins=False)
    worker = make_delivery_process(spool_dir, policy, FAST)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await worker.start()
    print(f"worker started {worker.process.pid}", flush=True)
    await stop.wait()
    await worker.stop(5)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
