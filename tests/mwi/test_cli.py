"""`mailcall mwi status` and `mailcall mwi sync`, run as the admin runs them, on real peers."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys

from mailcall.mwi.service import MwiService
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

    # No mailcall serve here: the commands count (and publish) by themselves, and say so.
    run = mailcall("mwi", "status", "alice", "--json", "--policy", str(policy))
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["source"] == "this command"
    row = out["users"][0]
    assert row["mailcall"] == {"new": 2, "old": 0} and row["asterisk"] is None
    assert not row["in_sync"]

    run = mailcall("mwi", "sync", "--json", "--policy", str(policy))
    out = json.loads(run.stdout)
    assert out["source"] == "this command"
    assert out["published"] == 1 and out["asterisk_error"] is None  # alice: the one with a folder
    assert set(out["unreadable"]) == {"bernard", "carole", "emma", "fanny"}  # no folder yet
    assert run.returncode == 1  # some mailboxes could not be read: said, and exit 1

    run = mailcall("mwi", "status", "alice", "--policy", str(policy))
    assert run.returncode == 0, run.stderr
    assert "does not answer" in run.stdout  # the admin is told no service was asked
    assert "2/0" in run.stdout and " ok" in run.stdout
    assert secret.read_text().strip() not in run.stdout + run.stderr


async def mailcall_async(*args):
    """The command in a subprocess while this test's event loop keeps the service running."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mailcall.core.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


async def test_status_and_sync_ask_the_running_service(stack, tmp_path):  # noqa: F811
    """With mailcall serve's lamp running, the commands show its ledger and make it reconcile:
    one writer of lamps (a command publishing on its own could overwrite a newer lamp)."""
    mail, ast, _phone, secret = stack
    policy = write_config(tmp_path, mail, ast, secret)
    settings = mail.settings(ami_port=ast.ami_port, ami_secret_file=str(secret),
                             trigger_socket=None)
    service = MwiService(mail.runtime, settings)
    await service.start()
    try:
        assert await service.ami.wait_connected(10)
        path = mail.spool / "mwi-control.sock"
        assert path.is_socket() and stat.S_IMODE(path.stat().st_mode) == 0o600
        loop = asyncio.get_running_loop()
        for n in (1, 2):
            await loop.run_in_executor(None, mail.deposit, "alice", f"call-{n}")
        service.reconcile()
        await service.reconciled()
        assert await service.publisher.settled(10)

        code, out, err = await mailcall_async("mwi", "status", "alice", "--json",
                                              "--policy", str(policy))
        assert code == 0, err
        got = json.loads(out)
        assert got["source"] == "service" and got["service"]["ami_connected"]
        row = got["users"][0]
        assert row["mailcall"] == row["published"] == row["asterisk"] == {"new": 2, "old": 0}
        assert row["in_sync"]

        # Asterisk loses the lamp: status shows the difference, sync has the service fix it.
        assert (await service.ami.action("MWIDelete", {"Mailbox": row["mailbox"]})).ok
        code, out, _ = await mailcall_async("mwi", "status", "alice", "--policy", str(policy))
        assert code == 0 and "2/0" in out and "differs" in out
        before = service.reconciles
        code, out, err = await mailcall_async("mwi", "sync", "--json", "--policy", str(policy))
        got = json.loads(out)
        assert got["source"] == "service" and got["published"] == 1, got
        assert set(got["unreadable"]) == {"bernard", "carole", "emma", "fanny"}  # no folder
        assert code == 1  # some mailboxes unreadable: said, and exit 1
        assert service.reconciles > before  # the service's own reconcile did it
        code, out, _ = await mailcall_async("mwi", "status", "alice", "--policy", str(policy))
        assert code == 0 and " ok" in out, out
    finally:
        await service.stop(1.0)
    assert not path.exists()  # removed at stop: the next command knows nobody listens


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
