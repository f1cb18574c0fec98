"""LMTP delivery throughput through one real Dovecot, three ways, in the same run.

(a) a global Sieve script of the same size and header work that calls nothing;
(b) mailcall's generated script + the socket bridge (``mailcall serve``'s service,
    in its own process, as in production);
(c) the same script answered by the ``sieve_execute_bin_dir`` program (a process
    per message) relaying to the same daemon;
(t) for scale, the same script answered by a trivial asyncio daemon that
    decides nothing and answers a constant.

Every recipient's profile notifies mail, so every (b), (c) and (t) message
costs a call (the generated script skips the call for other recipients: that
case is as fast as (a) and not measured). CPU per message of Dovecot's process
tree, of each daemon and of this script (the LMTP client) is read from /proc
around each variant's rounds: on a busy 2-CPU machine throughput follows total
CPU, so these columns say where a difference comes from.

The three variants are three users of the same Dovecot instance: userdb extra
fields give each its own ``sieve_before`` and, for (c), an empty
``sieve_execute_socket_dir`` so that only the bin dir is searched. Rounds
alternate a, b, c so that machine noise hits all three alike.

Run as root: /work/venv/bin/python bench/sieve/bench_lmtp.py [--messages N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
import shutil
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for tests.support

from mailcall.core.policy.load import compile_text
from mailcall.sieve.commands import compile_script
from mailcall.sieve.exec_client import client_script
from mailcall.sieve.generate import global_script, null_script
from tests.support import REPO
from tests.support.dovecot import MAIL_UID, Dovecot

POLICY = """\
[organisation]
name = "Bench"
domain = "bench.example"
timezone = "Europe/Paris"
language = "en"
country = "FR"

[server]
sieve_socket = "{socket}"
spool_dir = "{spool}"

[channels]
file_path = "{file_path}"
rate_limit_per_hour = 10000

[profiles.notified]
description = "notified of every mail"
[profiles.notified.features]
notify = {{ mail = true, media = ["file"], hours = "always" }}

[users.a]
name = "A"
email = "a@bench.example"
profile = "notified"
preferred_medium = "file"

[users.b]
name = "B"
email = "b@bench.example"
profile = "notified"
preferred_medium = "file"

[users.c]
name = "C"
email = "c@bench.example"
profile = "notified"
preferred_medium = "file"

[users.t]
name = "T"
email = "t@bench.example"
profile = "notified"
preferred_medium = "file"
"""

DAEMON = """\
import asyncio, sys
sys.path.insert(0, {repo!r})
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.policy.load import load_policy
from mailcall.core.host.runtime import Runtime
from mailcall.core.host.serve import run
from mailcall.plugins import channels, sieve
pm = make_plugin_manager(entrypoints=False)
pm.register(channels, name="channels")
pm.register(sieve, name="sieve")
asyncio.run(run(Runtime(load_policy({policy!r}, dropins=False), pm)))
"""


TRIVIAL = """\
import asyncio, os, sys
async def answer(reader, writer):
    await reader.read()  # until Dovecot's shutdown(SHUT_WR)
    writer.write(b"+\\n")
    writer.close()
async def main():
    server = await asyncio.start_unix_server(answer, path=sys.argv[1], backlog=4096)
    os.chown(sys.argv[1], 0, {gid})
    os.chmod(sys.argv[1], 0o660)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def message(to: str) -> bytes:
    return (
        f"From: Client <client@example.net>\r\nTo: {to}\r\n"
        f"Subject: Order {uuid.uuid4().hex[:8]}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@example.net>\r\nDate: Tue, 08 Dec 2026 10:00:00 +0100\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        + "Hello, please call me back about the order.\r\n" * 20
    ).encode()


def deliver(port: int, rcpt: str, count: int, workers: int) -> float:
    """Messages per second for `count` deliveries over `workers` parallel LMTP sessions."""
    per = [count // workers + (1 if i < count % workers else 0) for i in range(workers)]
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            with smtplib.LMTP("127.0.0.1", port) as lmtp:
                for _ in range(n):
                    refused = lmtp.sendmail("client@example.net", [rcpt], message(rcpt))
                    if refused:
                        raise RuntimeError(f"refused: {refused}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in per]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise errors[0]
    return count / elapsed


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User+system CPU of `pid` (plus reaped children's if asked), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    used = int(fields[11]) + int(fields[12])
    if children:
        used += int(fields[13]) + int(fields[14])
    return used / _TICK


def tree_cpu(root_pid: int) -> float:
    """CPU of a process tree: `root_pid` with its reaped children, plus live descendants."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    total, todo = cpu_seconds(root_pid, children=True), list(kids.get(root_pid, []))
    while todo:
        pid = todo.pop()
        total += cpu_seconds(pid)
        todo += kids.get(pid, [])
    return total


def add_user(d: Dovecot, address: str, extra: dict[str, str]) -> None:
    home = d.add_user(address)
    lines = (d.root / "passwd").read_text().splitlines()
    fields = " ".join(f"userdb_{k}={v}" for k, v in extra.items())
    lines[-1] = lines[-1] + fields
    (d.root / "passwd").write_text("\n".join(lines) + "\n")
    os.chown(home, MAIL_UID, MAIL_UID)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200, help="per variant and round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--workers", type=int, default=4, help="parallel LMTP sessions")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("run as root (Dovecot's test instance needs it)", file=sys.stderr)
        return 2

    root = Path(tempfile.mkdtemp(prefix="mailcall-bench-"))
    root.chmod(0o755)
    scripts, bin_dir = root / "sieve", root / "bin"
    scripts.mkdir()
    bin_dir.mkdir()
    d = Dovecot(root=root / "dovecot", plugin={
        "sieve_plugins": "sieve_extprograms",
        "sieve_global_extensions": "+vnd.dovecot.execute",
        "sieve_execute_socket_dir": "sieve-execute",
        "sieve_execute_bin_dir": str(bin_dir),
        "sieve_execute_exec_timeout": "3s",
    })
    d.root.mkdir()
    d.root.chmod(0o755)
    d.write_config()
    add_user(d, "a@bench.example", {"sieve_before": str(scripts / "null.sieve")})
    add_user(d, "b@bench.example", {"sieve_before": str(scripts / "mailcall.sieve")})
    add_user(d, "c@bench.example", {"sieve_before": str(scripts / "mailcall.sieve"),
                                    "sieve_execute_socket_dir": ""})
    add_user(d, "t@bench.example", {"sieve_before": str(scripts / "mailcall.sieve"),
                                    "sieve_execute_socket_dir": "sieve-trivial"})
    d.start()
    daemon = trivial = None
    try:
        socket_dir = d.base_dir / "sieve-execute"
        socket_dir.mkdir()
        os.chown(socket_dir, 0, MAIL_UID)
        socket_dir.chmod(0o750)
        sock = socket_dir / "mailcall"
        policy_file = root / "policy.toml"
        policy_file.write_text(POLICY.format(socket=sock, spool=root / "spool",
                                              file_path=root / "notify.jsonl"))
        policy = compile_text(policy_file.read_text())
        (scripts / "mailcall.sieve").write_text(global_script(policy))
        (scripts / "null.sieve").write_text(null_script(policy))
        for name in ("mailcall.sieve", "null.sieve"):
            compile_script(scripts / name, d.conf)
        program = bin_dir / "mailcall"
        program.write_text(client_script(str(sock)))
        program.chmod(0o755)
        daemon = subprocess.Popen(
            [sys.executable, "-c", DAEMON.format(repo=str(REPO), policy=str(policy_file))],
            stderr=(root / "daemon.log").open("wb"))
        trivial_dir = d.base_dir / "sieve-trivial"
        trivial_dir.mkdir()
        trivial_dir.chmod(0o755)
        trivial = subprocess.Popen([sys.executable, "-c", TRIVIAL.format(gid=MAIL_UID),
                                    str(trivial_dir / "mailcall")])
        deadline = time.monotonic() + 10
        while not sock.exists() or not (trivial_dir / "mailcall").exists():
            if time.monotonic() > deadline or daemon.poll() is not None:
                raise RuntimeError("mailcall daemon did not start:\n"
                                   + (root / "daemon.log").read_text(errors="replace")[-3000:])
            time.sleep(0.05)

        print(f"LMTP throughput, {args.messages} messages x {args.rounds} rounds per variant, "
              f"{args.workers} parallel sessions, {os.cpu_count()} CPUs")
        deliver(d.lmtp_port, "a@bench.example", 40, args.workers)  # warm-up
        deliver(d.lmtp_port, "b@bench.example", 40, args.workers)
        deliver(d.lmtp_port, "c@bench.example", 20, args.workers)
        deliver(d.lmtp_port, "t@bench.example", 40, args.workers)
        results: dict[str, list[float]] = {"a": [], "b": [], "c": [], "t": []}
        cpu: dict[str, list[float]] = {k: [0.0, 0.0, 0.0, 0.0] for k in "abct"}
        count = dict.fromkeys("abct", 0)
        master = int((d.base_dir / "master.pid").read_text().split()[0])
        pids = (master, daemon.pid, trivial.pid, os.getpid())
        for _ in range(args.rounds):
            for variant in "abct":
                n = args.messages if variant != "c" else max(args.messages // 3, 20)
                before = [tree_cpu(pids[0]), tree_cpu(pids[1]), cpu_seconds(pids[2]),
                          cpu_seconds(pids[3])]
                results[variant].append(deliver(d.lmtp_port, f"{variant}@bench.example", n,
                                                args.workers))
                client = cpu_seconds(pids[3])  # before the /proc walks below
                after = [tree_cpu(pids[0]), tree_cpu(pids[1]), cpu_seconds(pids[2]), client]
                for i in range(4):
                    cpu[variant][i] += after[i] - before[i]
                count[variant] += n
        best = {k: max(v) for k, v in results.items()}
        median = {k: statistics.median(v) for k, v in results.items()}
        # Ratios per round (a, b, c ran back to back), then their median: drift cancels.
        ab = statistics.median(b / a for a, b in zip(results["a"], results["b"], strict=True))
        bc = statistics.median(b / c for b, c in zip(results["b"], results["c"], strict=True))
        labels = {"a": "(a) script calling nothing", "b": "(b) mailcall + socket bridge",
                  "c": "(c) mailcall + exec program",
                  "t": "(t) constant-answer daemon"}
        for k in "abct":
            print(f"  {labels[k]:32s} median {median[k]:7.1f} msg/s   best {best[k]:7.1f} msg/s")
        print(f"  ratio (b)/(a) = {ab:.2f}   (target >= 0.80; median of per-round ratios)")
        print(f"  ratio (b)/(c) = {bc:.2f}   (target >= 3.0)")
        at = statistics.median(t / a for a, t in zip(results["a"], results["t"], strict=True))
        print(f"  for scale: (t)/(a) = {at:.2f}: the same script answered by a daemon that "
              "decides nothing (Dovecot's own cost of the socket round trip)")
        print("  CPU per message (µs; 10 ms clock ticks, so rough): "
              "Dovecot / mailcall daemon / constant daemon / LMTP client (this script)")
        for k in "abct":
            d_us, m_us, t_us, c_us = (1e6 * x / count[k] for x in cpu[k])
            print(f"    ({k}) {d_us:7.0f} / {m_us:5.0f} / {t_us:5.0f} / {c_us:5.0f}")
        daemon.terminate()
        daemon.wait(10)
        notify_file = root / "notify.jsonl"
        sent = notify_file.read_text().count('"outcome": "sent"') if notify_file.exists() else 0
        print(f"  notifications the daemon sent (b and c): {sent}")
        log = d.log_text()
        if "Panic" in log or "failed to execute" in log:
            print("WARNING: Dovecot logged execute failures or a panic during the run")
        return 0
    finally:
        for proc in (daemon, trivial):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        d.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
