"""One fact, both sides: ``mailcall absence set USER --until ... --backup B`` run as the admin
runs it (the CLI, another process) is obeyed by the next routed call (FastAGI session: B
rings, the absence greeting is chosen) and by the next mail (a real Dovecot answers with the
auto-reply of the regenerated per-user Sieve script, and the bridge withholds the mobile
notification), with the same dates and backup on both sides."""

from __future__ import annotations

import email
import email.policy
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailcall.agi.server import AgiServer
from mailcall.agi.service import collect_handlers
from mailcall.core.decisions.absence_text import auto_reply_text
from mailcall.plugins import agi as agi_plugin
from mailcall.plugins import rules as rules_plugin
from mailcall.plugins import userstore as userstore_plugin
from mailcall.sieve.generate import USERS_DIR
from mailcall.userstore.overlay import decision_policy
from tests.agi.fake_asterisk import Call, run_call
from tests.agi.harness import RecordingDepositor
from tests.sieve.support import PARIS, build_rig, close_rig, message, policy_text, wait_for

pytestmark = pytest.mark.dovecot

ALICE = "alice@stockinox.example"


def office_day_within(start: datetime, days: int) -> datetime:
    """10:00 in Paris on a weekday (not a holiday of the example policy) after `start`."""
    day = start.astimezone(PARIS).date() + timedelta(days=1)
    while day.weekday() >= 5 or (day.month, day.day) in ((12, 25), (1, 1)):
        day += timedelta(days=1)
    assert day < start.astimezone(PARIS).date() + timedelta(days=days)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=PARIS)


@pytest.fixture
def rig(dovecot_factory, tmp_path):
    written: dict[str, str] = {}

    def text(**kwargs):
        written["policy"] = policy_text(**kwargs)
        return written["policy"]

    rig = build_rig(dovecot_factory, text=text)
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(written["policy"])
    rig.policy_file = policy_file
    rig.store = tmp_path / "users" / "store.sqlite"
    rig.runtime.overrides.update({
        "greetings_dir": str(tmp_path / "greetings"), "sieve_dir": str(rig.scripts),
        "dovecot_config": str(rig.dovecot.conf)})
    rig.runtime.pm.register(userstore_plugin, name="userstore")
    rig.runtime.clock = lambda: datetime.now(UTC)  # Sieve's currentdate is Dovecot's real clock
    rig.start_mailcall()
    rig.runtime.depositor = RecordingDepositor()  # after start: no deposit plugin here
    # The routing handlers, served on a free port (not the service's fixed one).
    rig.runtime.pm.register(agi_plugin, name="agi")
    rig.runtime.pm.register(rules_plugin, name="rules")
    yield rig
    close_rig(rig)


def mailcall(rig, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailcall.core.cli", *args, "--policy",
                           str(rig.policy_file), "--store", str(rig.store)],
                          capture_output=True, text=True, timeout=60)


def route(rig, call: Call) -> Call:
    async def go():
        server = AgiServer(rig.runtime, collect_handlers(rig.runtime), host="127.0.0.1", port=0)
        await server.start()
        try:
            return await run_call(call, *server.address)
        finally:
            await server.stop(2.0)

    return rig.loop.run(go())


def test_one_absence_set_by_the_cli_is_obeyed_by_calls_and_by_mail(rig):
    names = {s.name for s in rig.services}
    assert {"user-store", "sieve-bridge", "sieve-user-scripts"} <= names, names
    now = datetime.now(UTC)
    until = (now + timedelta(days=20)).astimezone(PARIS).date().isoformat()
    done = mailcall(rig, "absence", "set", "alice", "--until", until, "--backup", "carole",
                    "--message", "Au salon de Lyon, je lis mes mails le soir.")
    assert done.returncode == 0, done.stderr
    set_at = time.monotonic()  # the change was committed before the CLI returned

    # Mail: the serving process rewrote alice's script from the store (no install run).
    script = rig.scripts / USERS_DIR / f"{ALICE}.sieve"
    assert wait_for(lambda: script.exists() and "Au salon de Lyon" in script.read_text(), 10)
    took = time.monotonic() - set_at
    assert rig.deliver(ALICE, message(to=ALICE, subject="Devis inox 316L")) == {}
    (reply,) = wait_for(lambda: rig.smtp.to("bob@example.net"))
    reply = email.message_from_bytes(reply.data, policy=email.policy.default)
    refined = rig.loop.run(_refined(rig))
    (absence,) = refined.absences["alice"]
    subject, body = auto_reply_text(refined, "alice", absence)
    assert reply["Subject"] == subject
    assert reply["Auto-Submitted"].startswith("auto-replied")
    text = reply.get_content()
    assert "Carole Dubois <carole@stockinox.example>" in text
    assert "Au salon de Lyon, je lis mes mails le soir." in text
    assert body.split("\n")[2] in text  # "... absent(e) jusqu'au <date> ...": the same date
    rig.drain()
    assert rig.records() == []  # absent: the bridge sent no SMS for this mail

    # The phone: the next routed call during that absence, in office hours, goes to carole.
    rig.runtime.clock = lambda: office_day_within(now, 20)
    call = route(rig, Call(args=("201",), dials=["noanswer"] * 3))
    dials = [c for c in call.commands if c.startswith("EXEC Dial")]
    assert dials[0] == 'EXEC Dial "PJSIP/203,20"\n', dials
    assert call.variables_set["MAILCALL_GREETING"] == "absence"
    assert call.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    assert rig.runtime.depositor.messages[-1].reason == "absent"
    assert took < 5, f"the mail side obeyed the change only {took:.1f} s after the CLI ended"

    # Cleared by the CLI: the script goes, mail is answered no more.
    done = mailcall(rig, "absence", "clear", "alice")
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: not script.exists(), 10)
    rig.runtime.clock = lambda: datetime.now(UTC)
    assert rig.deliver(ALICE, message(to=ALICE, subject="Relance"),
                       sender="carl@example.net") == {}
    time.sleep(1.0)  # a reply, if any, would have arrived by now
    assert rig.smtp.to("carl@example.net") == []


async def _refined(rig):
    return decision_policy(rig.runtime)


def test_the_install_command_keeps_the_users_own_absences(rig, tmp_path):
    """``mailcall sieve install`` (run by IT after a policy change) writes the auto-reply of
    an absence a user set themselves too, instead of removing it as stale."""
    until = (datetime.now(UTC) + timedelta(days=5)).date().isoformat()
    done = mailcall(rig, "absence", "set", "alice", "--until", until, "--message", "Ailleurs")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "generated"
    import os
    env = dict(os.environ, MAILCALL_USER_STORE=str(rig.store))
    gen = subprocess.run([sys.executable, "-m", "mailcall.core.cli", "sieve", "generate",
                          "--out", str(out), "--policy", str(rig.policy_file)],
                         capture_output=True, text=True, timeout=60, env=env)
    assert gen.returncode == 0, gen.stderr
    assert "Ailleurs" in (out / USERS_DIR / f"{ALICE}.sieve").read_text()
    assert Path(out / USERS_DIR / "emma@stockinox.example.sieve").exists()  # the policy's own
