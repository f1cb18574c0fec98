"""`mailcall user ...` and `mailcall absence ...` end to end, as the admin runs them: a real
subprocess on the bundled example policy, human and --json output, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

from tests.userstore.conftest import EXAMPLE


def mailcall(store, *args, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MAILCALL_USER_STORE"}
    env["SUDO_USER"] = "admin"
    return subprocess.run(
        [sys.executable, "-m", "mailcall.core.cli", *args, "--policy", str(EXAMPLE),
         "--store", str(store)], input=stdin, capture_output=True, text=True, env=env,
        timeout=60)


def test_set_show_history_clear(store_path):
    done = mailcall(store_path, "user", "set", "alice", "notify.hours=office",
                    "reroute.mobile=off", "backups=@reception,bernard")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("saved for alice: backups, notify.hours, reroute.mobile\n")
    assert "reroute.mobile    off  <- user's choice at " in done.stdout
    assert "from cli (by it:admin)" in done.stdout

    shown = mailcall(store_path, "user", "show", "alice", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["ok"] is True and data["profile"] == "sales"
    assert data["settings"]["backups"]["value"] == ["@reception", "bernard"]
    assert data["settings"]["notify.media"] == {"value": ["sms", "email"],
                                                "source": "profile sales"}

    pin = mailcall(store_path, "user", "set", "alice", "--pin", "--json", stdin="2468\n")
    assert pin.returncode == 0, pin.stderr
    assert json.loads(pin.stdout)["settings"]["pin"]["value"] == "set"
    assert "2468" not in pin.stdout + pin.stderr

    history = mailcall(store_path, "user", "history", "alice", "--json")
    entries = json.loads(history.stdout)["entries"]
    assert [(e["field"], e["new"], e["actor"], e["origin"]) for e in entries] == [
        ("pin", "(a PIN hash)", "it:admin", "cli"),
        ("backups", '["@reception", "bernard"]', "it:admin", "cli"),
        ("reroute.mobile", "false", "it:admin", "cli"),
        ("notify.hours", '"office"', "it:admin", "cli")]

    cleared = mailcall(store_path, "user", "clear", "alice", "reroute.mobile", "--json")
    assert cleared.returncode == 0, cleared.stderr
    assert json.loads(cleared.stdout)["settings"]["reroute.mobile"] == {
        "value": True, "source": "profile sales"}


def test_refusals_and_usage_errors(store_path):
    refused = mailcall(store_path, "user", "set", "carole", "notify.mail=on")
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr == (
        "mailcall: refused for user 'carole' (nothing was saved):\n"
        "  notify.mail: profile 'office' does not grant notify.mail (it is off there); users "
        "may only switch a feature off\n")
    as_json = mailcall(store_path, "user", "set", "david", "backups=carole", "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) == {"ok": False, "user": "david", "problems": [
        {"field": "backups", "message": "profile 'reception' locks 'reroute': users may not "
         "change it; ask IT to change the profile or the policy file"}]}
    usage = mailcall(store_path, "user", "set", "alice", "pin=1234", "notify.hours")
    assert usage.returncode == 64
    assert usage.stderr == (
        "mailcall: nothing was saved for alice: pin: is read from standard input or a prompt, "
        "never from the command line (it would stay in the shell history): use --pin; "
        "'notify.hours': write FIELD=VALUE, e.g. notify.hours=office\n")


def test_absence_set_and_clear(store_path):
    year = date.today().year + 1  # the CLI runs on the real clock: within 5 years ahead
    done = mailcall(store_path, "absence", "set", "alice", "--from", f"{year}-03-01",
                    "--until", f"{year}-03-15", "--backup", "bernard", "--message",
                    "Back on the 15th", "--json")
    assert done.returncode == 0, done.stderr
    (absence,) = json.loads(done.stdout)["absences"]
    assert absence["from"] == f"{year}-03-01T00:00:00+01:00"
    assert absence["until"] == f"{year}-03-15T00:00:00+01:00"
    assert (absence["backup"], absence["message"]) == ("bernard", "Back on the 15th")
    bad = mailcall(store_path, "absence", "set", "alice", "--until", "2020-01-01",
                   "--backup", "ghost")
    assert bad.returncode == 2
    assert "  absence.until: 2020-01-01 00:00 is in the past (now: " in bad.stderr
    assert "  absence.backup: 'ghost' is not a defined user or @group" in bad.stderr
    cleared = mailcall(store_path, "absence", "clear", "alice", "--id", str(absence["id"]))
    assert cleared.returncode == 0, cleared.stderr
    assert cleared.stdout.startswith(f"cleared for alice: #{absence['id']} (absences in the "
                                     "policy file stay)")
    emma = mailcall(store_path, "absence", "clear", "emma")
    assert emma.returncode == 0
    assert "2026-12-01 00:00 to 2026-12-13 00:00, backup bernard  <- policy file" in emma.stdout


def test_damaged_store_exit_74(tmp_path):
    path = tmp_path / "store.sqlite"
    path.write_bytes(b"garbage" * 1000)
    done = mailcall(path, "user", "show", "alice")
    assert done.returncode == 74
    assert done.stderr.startswith(f"mailcall: the user store {path} is damaged (")
    assert done.stderr.endswith("calls and mail keep following the policy file alone "
                                "meanwhile\n")
    as_json = mailcall(path, "user", "show", "alice", "--json")
    assert json.loads(as_json.stdout)["error"] == "StoreCorrupt"
