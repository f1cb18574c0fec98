"""`mailcall mwi status` and `mailcall mwi sync`, run as the admin runs them, on real peers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.mwi.support import POLICY
from tests.mwi.test_live import stack  # noqa: F401 - the fixture


def write_config(tmp_path, mail, ast, secret):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.read_text() + f'\n[server]\nspool_dir = "{mail.spool}"\n')
    (tmp_path / "mwi.toml").write_text(f"""
[ami]
port = {ast.ami_port}
secret_file = "{secret}"
[imap]
port = {mail.dovecot.imap_port}
master_user = "mailcall-mwi"
password_file = "{mail.work / 'imap-master.secret'}"
""")
    return policy


def mailcall(*args, env=None):
    run = subprocess.run([sys.executable, "-m", "mailcall.core.cli", *args],
                         capture_output=True, text=True, timeout=60,
                         env={**os.environ, **(env or {})})
    return run


def test_status_and_sync(stack, tmp_path):  # noqa: F811
    mail, ast, _phone, secret = stack
    policy = write_config(tmp_path, mail, ast, secret)
    mail.deposit("alice", "call-1")
    mail.deposit("alice", "call-2")

    run = mailcall("mwi", "status", "alice", "--json", "--policy", str(policy))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    row = out["users"][0]
    assert row["imap"] == {"new": 2, "old": 0} and row["asterisk"] is None
    assert not row["in_sync"]

    run = mailcall("mwi", "sync", "--json", "--policy", str(policy))
    out = json.loads(run.stdout)
    assert out["published"] == 1 and out["asterisk_error"] is None  # alice: the one with a folder
    assert set(out["unreadable"]) == {"bernard", "carole", "emma", "fanny"}  # no folder yet
    assert run.returncode == 1  # some mailboxes could not be read: said, and exit 1

    run = mailcall("mwi", "status", "alice", "--policy", str(policy))
    assert run.returncode == 0, run.stderr
    assert "2/0" in run.stdout and " ok" in run.stdout
    assert secret.read_text().strip() not in run.stdout + run.stderr


def test_unconfigured_and_unknown_user(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.read_text())
    run = mailcall("mwi", "status", "--policy", str(policy), env={"MAILCALL_MWI_CONFIG": ""})
    assert run.returncode == 64 and "not configured" in run.stderr
    (tmp_path / "mwi.toml").write_text("[imap]\nport = 0\n")
    run = mailcall("mwi", "sync", "--policy", str(policy))
    assert run.returncode == 64 and "[imap] port: must be a port number" in run.stderr
    (tmp_path / "mwi.toml").write_text("")
    run = mailcall("mwi", "status", "zoe", "--policy", str(policy))
    assert run.returncode == 64 and "'zoe' is no watched user" in run.stderr
