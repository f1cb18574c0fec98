"""Does a burst of voicemail slow call routing? FastAGI latency during 20 simultaneous deposits.

    .venv/bin/python bench/deposit/bench_offloop.py [--seconds 60] [--burst 20]

One event loop runs, as in ``mailcall serve``, the real FastAGI server (the
``route`` handler of the agi plugin) and the spool's depositor; the spool worker
delivers into a real private Dovecot (started here; run as root). A separate
process plays Asterisk: one ``route`` session every 5 ms, recording each
session's latency (connect → server closes). The probe runs idle, then while
BURST voicemails of SECONDS each are deposited at once (``runtime.deposit`` →
spool → Opus encoding → LMTP), until all are delivered.

Two runs, same load:
* mailcall       what ``mailcall serve`` runs: the worker in its delivery process
                 at nice +10 (deposit/delivery_process.py), encoding in its build
                 processes (SCHED_IDLE); the serving process only accepts deposits
* on the loop    the same worker inside the serving process, with an executor that
                 runs the build inline: what happens if encoding blocks the event
                 loop (the peer)

Target: p99 during the burst within 2x the idle p99 for mailcall.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import Executor, Future
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.support

import numpy
import soundfile

from mailcall.core.decisions.deposits import VoiceMessage
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import compile_text
from mailcall.deposit.delivery_process import DeliveryProcess
from mailcall.deposit.spool import Spool
from mailcall.deposit.spool_depositor import SpoolDepositor
from mailcall.deposit.worker import SpoolWorker, WorkerSettings
from mailcall.plugins import deposit as deposit_plugin
from tests.agi.fake_asterisk import quick_session
from tests.support import MEDIA
from tests.support.policies import example_policy_text


def policy_text(address: str, fmt: str) -> str:
    """The example policy, deposits into the bench's Dovecot by LMTP in format `fmt`."""
    return example_policy_text({
        "delivery": {"method": "lmtp", "address": address},
        "profiles": {"office": {"features": {"voicemail": {"formats": [fmt]}}}},
        # The example narrows Bernard to WAV, which must stay within his profile's formats.
        "users": {"bernard": {"overrides": {"voicemail": {"formats": [fmt]}}}},
    })


def probe_main(port: int, interval: float, conn) -> None:
    """Child process: a route session every `interval` s until told to stop."""
    async def run() -> list[tuple[float, float]]:
        samples = []
        stop = asyncio.Event()
        asyncio.get_running_loop().add_reader(conn.fileno(), stop.set)
        while not stop.is_set():
            t0 = time.monotonic()
            await quick_session(port)
            samples.append((t0, time.monotonic() - t0))
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - t0)))
        return samples

    conn.send(asyncio.run(run()))


class InlineExecutor(Executor):
    """The peer: runs the build right away, on the event loop's thread."""

    def submit(self, fn, /, *args, **kwargs):
        future: Future = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


def p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100)[98] if len(values) >= 2 else float("nan")


async def scenario(label, policy, spool_dir, wav, burst, executor_factory, idle_s,
                   concurrency) -> dict:
    from mailcall.agi.server import AgiServer
    from mailcall.agi.service import collect_handlers
    from mailcall.core.host.plugin_manager import make_plugin_manager
    from mailcall.plugins import agi as agi_plugin
    from mailcall.plugins import rules as rules_plugin

    pm = make_plugin_manager(entrypoints=False)
    pm.register(agi_plugin, name="agi")
    pm.register(rules_plugin, name="rules")
    pm.register(deposit_plugin, name="deposit")
    runtime = Runtime(policy, pm)
    spool = Spool(spool_dir)
    runtime.depositor = depositor = SpoolDepositor(spool)
    # The end of the burst is signalled by the worker's own delivery callback: polling the
    # spool directory from this loop would add work to the loop only during the burst and
    # bias the comparison with the idle baseline.
    delivered = [0]
    all_delivered = asyncio.Event()

    def count(*_args) -> None:
        delivered[0] += 1
        if delivered[0] >= burst:
            all_delivered.set()

    common = dict(
        planner=lambda d: deposit_plugin.plan_for(policy, d),
        origin=lambda: deposit_plugin.origin_for(policy),
        target=lambda: deposit_plugin.target_for(policy),
        encoders=deposit_plugin.encoders_from(pm),
        settings=WorkerSettings(poll_interval=0.5, concurrency=concurrency),
        delivered=count,
    )
    if executor_factory is None:  # what `mailcall serve` runs (plugins/deposit.py)
        worker = DeliveryProcess(spool, depositor=depositor, **common)
    else:
        worker = SpoolWorker(spool, executor_factory=executor_factory, **common)
    depositor.subscribe(worker.wake)
    server = AgiServer(runtime, collect_handlers(runtime), host="127.0.0.1", port=0)
    await server.start()
    await worker.start()
    here, there = mp.Pipe()
    probe = mp.get_context("spawn").Process(
        target=probe_main, args=(server.address[1], 0.005, there)
    )
    probe.start()
    lags: list[tuple[float, float]] = []

    async def lag_monitor() -> None:
        while True:
            t0 = time.monotonic()
            await asyncio.sleep(0.002)
            lags.append((t0, time.monotonic() - t0 - 0.002))

    monitor = asyncio.create_task(lag_monitor())
    await asyncio.sleep(idle_s)  # idle baseline (the first second is warm-up)
    burst_start = time.monotonic()
    base = VoiceMessage(call_id="", mailbox="alice", caller_number="+33698765432",
                        caller_name="Bernard Petit", at=datetime.now(UTC), reason="busy",
                        recording=str(wav))
    await asyncio.gather(*(runtime.deposit(replace(base, call_id=f"{label}.{n}"))
                           for n in range(burst)))
    await all_delivered.wait()
    burst_end = time.monotonic()
    here.send("stop")
    samples = await asyncio.get_running_loop().run_in_executor(None, here.recv)
    probe.join()
    monitor.cancel()
    await worker.stop(5)
    await server.stop(1)
    idle = [lat for t, lat in samples if t < burst_start and t > samples[0][0] + 1.0]
    busy = [lat for t, lat in samples if burst_start <= t <= burst_end]
    t_first = samples[0][0] + 1.0
    lag_idle = [lag for t, lag in lags if t_first < t < burst_start]
    lag_busy = [lag for t, lag in lags if burst_start <= t <= burst_end]
    return {"label": label, "idle": idle, "busy": busy, "burst_s": burst_end - burst_start,
            "lag_idle": lag_idle, "lag_busy": lag_busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each voicemail")
    parser.add_argument("--burst", type=int, default=20, help="simultaneous deposits")
    parser.add_argument("--idle", type=float, default=5.0, help="idle measurement, seconds")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions of both runs")
    parser.add_argument("--format", default="opus", choices=("opus", "mp3", "wav"),
                        help="voicemail format (wav: no encoding, isolates delivery costs)")
    parser.add_argument("--concurrency", type=int, default=WorkerSettings().concurrency,
                        help="deliveries under way at once (the worker's setting)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    from tests.support.dovecot import Dovecot, available

    if not available():
        sys.exit("bench_offloop: needs Dovecot installed and root (it starts a private instance)")
    root = Path(tempfile.mkdtemp(prefix="mailcall-bench-"))
    os.chmod(root, 0o755)
    dovecot = Dovecot(root=root / "dovecot")
    dovecot.write_config()
    dovecot.add_user("alice@stockinox.example")
    dovecot.start()
    try:
        wav = root / "message.wav"
        pcm = numpy.concatenate([soundfile.read(MEDIA / n, dtype="int16")[0] for n in
                                 ("voicemail-dtmf-end.wav", "voicemail-hangup-end.wav")])
        soundfile.write(wav, numpy.tile(pcm, int(args.seconds * 8000 // len(pcm)) + 1)
                        [: int(args.seconds * 8000)], 8000, subtype="PCM_16")
        text = policy_text(f"unix:{dovecot.lmtp_socket}", args.format)
        policy = compile_text(text, name="bench")
        print(f"{args.burst} simultaneous deposits of {args.seconds:.0f} s voicemail "
              f"({args.format}), "
              f"{args.concurrency} in flight, "
              f"FastAGI 'route' sessions every 5 ms, {os.cpu_count()} CPUs, "
              f"{args.rounds} rounds (load average now {os.getloadavg()[0]:.2f})\n")
        print(f"{'run':<14}{'round':>6}{'idle p50':>10}{'idle p99':>10}{'burst p50':>11}"
              f"{'burst p99':>11}{'p99 ratio':>10}{'burst s':>9}{'n':>6}"
              f"{'loop lag p99 idle/burst':>25}   (ms)")
        ratios: dict[str, list[float]] = {"mailcall": [], "on the loop": []}
        for round_ in range(args.rounds):
            for label, factory in (("mailcall", None), ("on the loop", InlineExecutor)):
                tag = f"{label[:2]}{round_}"
                r = asyncio.run(scenario(tag, policy, root / f"spool-{tag}", wav, args.burst,
                                         factory, args.idle, args.concurrency))
                idle99, busy99 = p99(r["idle"]) * 1000, p99(r["busy"]) * 1000
                ratios[label].append(busy99 / idle99)
                print(f"{label:<14}{round_:>6}{statistics.median(r['idle']) * 1000:>10.2f}"
                      f"{idle99:>10.2f}{statistics.median(r['busy']) * 1000:>11.2f}"
                      f"{busy99:>11.2f}{busy99 / idle99:>10.2f}{r['burst_s']:>9.2f}"
                      f"{len(r['busy']):>6}"
                      f"{p99(r['lag_idle']) * 1000:>16.2f} / {p99(r['lag_busy']) * 1000:<7.2f}")
        print()
        for label, values in ratios.items():
            print(f"{label:<14} median p99 ratio (burst / idle): {statistics.median(values):.2f}")
        verdict = "met" if statistics.median(ratios["mailcall"]) <= 2 else "NOT met"
        print(f"target: burst p99 <= 2x idle p99 for mailcall: {verdict}")
    finally:
        dovecot.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
