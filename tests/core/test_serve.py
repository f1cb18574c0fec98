"""`mailcall serve` as systemd runs it: start, reload on SIGHUP, stop on SIGTERM."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

from tests.support.waiting import wait_until

from .conftest import EXAMPLE, REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


wait_for = wait_until


def serve_command(policy: Path, port: int, spool: Path, greetings: Path,
                  sieve_socket: Path | None = None) -> list[str]:
    extra = ["--sieve-socket", str(sieve_socket)] if sieve_socket else []
    return [sys.executable, "-m", "mailcall.core.cli", "serve", "--policy", str(policy),
            "--agi-listen", f"127.0.0.1:{port}", "--spool-dir", str(spool),
            "--greetings-dir", str(greetings), *extra]


def answers(unix_socket: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as s:
        try:
            s.connect(str(unix_socket))
            return True
        except OSError:
            return False


def start_serve(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                env={**os.environ, "PYTHONUNBUFFERED": "1"})


def is_listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def test_serve_reload_and_stop(tmp_path):
    policy = tmp_path / "policy.toml"
    shutil.copy(EXAMPLE, policy)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = start_serve(serve_command(policy, port, tmp_path / "spool", tmp_path / "greetings"),
                       log)
    try:
        def listening():
            return is_listening(port)

        assert wait_for(listening), log.read_text()
        assert wait_for(lambda: "mailcall serving" in log.read_text()), log.read_text()
        text = log.read_text()
        serving = re.search(r"mailcall serving (.+) with policy (\S+)$", text, re.MULTILINE)
        assert serving and serving.group(2) == str(policy), text
        names = serving.group(1).split(", ")
        assert {"agi", "greetings", "deposit-spool"} <= set(names), names
        for service in names:  # each one said it started, before serving began
            started = re.search(rf"started {re.escape(service)}$", text, re.MULTILINE)
            assert started and started.start() < serving.start(), (service, text)
        # A broken edit is refused and the running policy kept.
        policy.write_text(policy.read_text() + "\n[users.broken]\nname = 1\n")
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload refused, running policy kept" in log.read_text())
        assert "users.broken.email: required key 'email' is missing" in log.read_text()
        assert listening() and proc.poll() is None
        shutil.copy(EXAMPLE, policy)
        proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "policy reloaded from" in log.read_text())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=40) == 0
        assert "stopping: letting calls and deliveries in progress finish" in log.read_text()
        assert not listening()
    finally:
        if proc.poll() is None:
            proc.kill()


def test_serve_refuses_an_invalid_policy(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text("[organisation]\nname = 'x'\n")
    out = subprocess.run([sys.executable, "-m", "mailcall.core.cli", "serve", "--policy",
                          str(policy)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2
    assert "organisation.domain: required key 'domain' is missing" in out.stderr
    assert "Traceback" not in out.stderr
    assert Path(policy).exists()


def test_a_second_serve_on_the_same_spool_is_refused(tmp_path):
    """Two serves on one spool would recover (empty tmp/) under each other's accepts and
    deliver every voicemail twice: the second one stops at once, naming the first one,
    and leaves it alone, whatever it reaches first (the spool lock, or the Sieve socket).
    A killed first one leaves no stale lock: the kernel drops it with the process."""
    policy = tmp_path / "policy.toml"
    shutil.copy(EXAMPLE, policy)
    spool, greetings = tmp_path / "spool", tmp_path / "greetings"
    (tmp_path / "sock").mkdir()
    sieve = tmp_path / "sock" / "mailcall-sieve"
    first_port = free_port()
    first = start_serve(serve_command(policy, first_port, spool, greetings, sieve),
                        tmp_path / "first.log")
    try:
        assert wait_for(lambda: "mailcall serving" in (tmp_path / "first.log").read_text())
        assert answers(sieve)
        for other_socket, refusal in [
            (tmp_path / "sock" / "other-sieve",
             f"the deposit spool {spool} is already used by another 'mailcall serve' "
             f"(pid {first.pid}"),
            (sieve, f"is listening on the Sieve socket {sieve}: stop it first"),
        ]:
            second_port = free_port()
            out = subprocess.run(
                serve_command(policy, second_port, spool, greetings, other_socket),
                capture_output=True, text=True, timeout=60)
            assert out.returncode == 1, out.stderr
            assert refusal in out.stderr, out.stderr
            assert "Traceback" not in out.stderr
            assert not is_listening(second_port)  # what it had started is stopped again
            # The first one is untouched: still routing calls, still serving Dovecot.
            assert first.poll() is None and is_listening(first_port) and answers(sieve)

        first.kill()
        first.wait(timeout=10)
        third = start_serve(serve_command(policy, second_port, spool, greetings, sieve),
                            tmp_path / "third.log")
        try:
            assert wait_for(lambda: "mailcall serving" in (tmp_path / "third.log").read_text()), \
                (tmp_path / "third.log").read_text()
            assert answers(sieve)  # the killed one's socket was replaced
            third.send_signal(signal.SIGTERM)
            assert third.wait(timeout=40) == 0
        finally:
            if third.poll() is None:
                third.kill()
    finally:
        if first.poll() is None:
            first.kill()


def test_serve_with_an_unusable_spool_says_why_without_a_traceback(tmp_path):
    policy = tmp_path / "policy.toml"
    shutil.copy(EXAMPLE, policy)
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    out = subprocess.run(serve_command(policy, free_port(), blocker / "spool",
                                       tmp_path / "greetings"),
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert f"cannot start: cannot use the deposit spool {blocker / 'spool'}" in out.stderr
    assert "Traceback" not in out.stderr


def test_serve_that_cannot_listen_says_why_without_a_traceback(tmp_path):
    policy = tmp_path / "policy.toml"
    shutil.copy(EXAMPLE, policy)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = subprocess.run(serve_command(policy, port, tmp_path / "spool",
                                            tmp_path / "greetings"),
                              capture_output=True, text=True, timeout=60)
    assert busy.returncode == 1
    assert (f"cannot start: cannot listen for FastAGI on 127.0.0.1:{port}: the address is in "
            f"use (another 'mailcall serve'? see what holds it: ss -ltnp 'sport = :{port}')"
            in busy.stderr)
    command = serve_command(policy, 0, tmp_path / "spool", tmp_path / "greetings")
    command[command.index("127.0.0.1:0")] = "nonsense"
    wrong = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert wrong.returncode == 1
    assert "cannot start: agi_listen 'nonsense' is not HOST:PORT" in wrong.stderr
    assert "Traceback" not in busy.stderr + wrong.stderr


def test_make_serve_runs_the_one_example_that_init_writes(tmp_path):
    """One example policy, not two copies: the Makefile's POLICY and the README's quick start
    name the packaged file, and `mailcall init` writes that very file."""
    from mailcall.core.cli import main

    makefile = (REPO / "Makefile").read_text()
    found = re.search(r"^POLICY \?= (\S+)$", makefile, re.MULTILINE)
    assert found, "the Makefile sets no POLICY for make serve"
    assert REPO / found.group(1) == EXAMPLE
    assert f"mailcall route --policy {found.group(1)} " in (REPO / "README.md").read_text()
    target = tmp_path / "policy.toml"
    assert main(["init", str(target)]) == 0
    assert target.read_bytes() == EXAMPLE.read_bytes()
    skip = {".git", ".venv", "build", "mailcall.egg-info", ".pytest_cache", ".ruff_cache"}
    copies = [p for top in REPO.iterdir() if top.is_dir() and top.name not in skip
              for p in top.rglob("small-company.toml")]
    assert copies == [EXAMPLE]
