"""`mailcall serve` as systemd runs it: start, reload on SIGHUP, stop on SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from .conftest import EXAMPLE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_serve_reload_and_stop(tmp_path):
    policy = tmp_path / "policy.toml"
    shutil.copy(EXAMPLE, policy)
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailcall.core.cli", "serve", "--policy", str(policy),
             "--agi-listen", f"127.0.0.1:{port}", "--spool-dir", str(tmp_path / "spool"),
             "--greetings-dir", str(tmp_path / "greetings")],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        def listening():
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return True
            except OSError:
                return False

        assert wait_for(listening), log.read_text()
        assert wait_for(lambda: "mailcall serving" in log.read_text()), log.read_text()
        text = log.read_text()
        for service in ("agi", "greetings"):
            assert f"started {service}" in text or service in text
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
