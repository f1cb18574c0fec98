"""Real FastAGI sessions obey the user store: the AGI server with the built-in handlers, the
``user-store`` and ``greetings`` services of ``mailcall serve``, a real SQLite store changed
by the ``mailcall`` CLI in another process, and the scripted fake Asterisk of tests/agi
answering with recorded replies."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
from datetime import date, datetime, timedelta
from pathlib import Path

from mailcall.plugins import greetings as greetings_plugin
from mailcall.plugins import speech as speech_plugin
from mailcall.plugins.greetings import GreetingsService
from mailcall.plugins.userstore import UserStoreService
from mailcall.userstore.overlay import overlay_of
from tests.agi.fake_asterisk import Call, run_call
from tests.agi.harness import PARIS, POLICY, make_runtime, serving
from tests.support.waiting import async_wait_until


def _office_day(start: date) -> datetime:
    """10:00 in Paris on the first weekday after `start` that is not a holiday of the policy."""
    day = start + timedelta(days=1)
    while day.weekday() >= 5 or (day.month, day.day) in ((12, 25), (1, 1)):
        day += timedelta(days=1)
    return datetime(day.year, day.month, day.day, 10, 0, tzinfo=PARIS)


_FROM = datetime.now(PARIS).date() + timedelta(days=7)
_UNTIL = _FROM + timedelta(days=12)
AWAY_FROM, AWAY_UNTIL = _FROM.isoformat(), _UNTIL.isoformat()
DURING = _office_day(_FROM)  # office hours, within that absence


def mailcall(policy: Path, store: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailcall.core.cli", *args, "--policy",
                           str(policy), "--store", str(store)],
                          capture_output=True, text=True, timeout=60)


def dials(call: Call) -> list[str]:
    return [c for c in call.commands if c.startswith("EXEC Dial")]


def setup(tmp_path: Path):
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    runtime = make_runtime(tmp_path, at=DURING)
    runtime.pm.register(speech_plugin, name="speech")
    # Greetings hear a user's change through mailcall_user_settings_changed.
    runtime.pm.register(greetings_plugin, name="greetings")
    service = UserStoreService(runtime)
    assert service.path == tmp_path / "users" / "store.sqlite"  # beside greetings/
    return policy, runtime, service


def test_an_absence_set_by_the_cli_reroutes_the_next_call_with_the_absence_greeting(tmp_path):
    policy, runtime, service = setup(tmp_path)
    greetings = GreetingsService(runtime)

    async def go():
        await service.start()
        await greetings.start()
        try:
            async with serving(runtime) as server:
                before = await run_call(Call(args=("201",), dials=["answer"]), *server.address)
                done = await asyncio.to_thread(
                    mailcall, policy, service.path, "absence", "set", "alice", "--from",
                    AWAY_FROM, "--until", AWAY_UNTIL, "--backup", "carole", "--message",
                    "Au salon de Lyon")
                assert done.returncode == 0, done.stderr
                # The very next call: no waiting for a poll, the decision refreshes the index.
                after = await run_call(Call(args=("201",), dials=["noanswer"] * 3),
                                       *server.address)
                wav = tmp_path / "greetings" / "alice" / "generated-absence"
                txt = wav.with_name("generated-absence.txt")
                assert await async_wait_until(
                    lambda: txt.exists() and "Carole Dubois" in txt.read_text(), 30), (
                    "the absence greeting was not regenerated with the backup's name")
                spoken = await run_call(Call(args=("201",), dials=["noanswer"] * 3,
                                             existing_files={str(wav)}), *server.address)
                return before, after, spoken
        finally:
            await greetings.stop(1)
            await service.stop(1)

    before, after, spoken = asyncio.run(go())
    assert dials(before) == ['EXEC Dial "PJSIP/201,20"\n']
    assert dials(after) == ['EXEC Dial "PJSIP/203,20"\n',  # carole, the absence's backup
                            'EXEC Dial "PJSIP/202,20"\n',  # then alice's own backups
                            'EXEC Dial "PJSIP/204,20"\n']  # @reception without carole again
    assert after.variables_set["MAILCALL_GREETING"] == "absence"
    assert after.variables_set["MAILCALL_STATUS"] == "VOICEMAIL"
    (message,) = [m for m in runtime.depositor.messages if m.call_id == after.uniqueid][:1]
    assert message.mailbox == "alice" and message.reason == "absent"
    wav = tmp_path / "greetings" / "alice" / "generated-absence"
    assert f'STREAM FILE {wav} "#"\n' in spoken.commands
    text = wav.with_name("generated-absence.txt").read_text()
    assert f"de retour le {_UNTIL:%d/%m}" in text and "Carole Dubois" in text


def test_clearing_it_routes_the_next_call_as_the_policy_says(tmp_path):
    policy, runtime, service = setup(tmp_path)

    async def go():
        await service.start()
        try:
            async with serving(runtime) as server:
                for args in (("absence", "set", "alice", "--from", AWAY_FROM, "--until",
                              AWAY_UNTIL, "--backup", "carole"),
                             ("user", "set", "alice", "reroute.mobile=off",
                              "backups=@reception")):
                    done = await asyncio.to_thread(mailcall, policy, service.path, *args)
                    assert done.returncode == 0, done.stderr
                away = await run_call(Call(args=("201",), dials=["noanswer"] * 2),
                                      *server.address)
                done = await asyncio.to_thread(mailcall, policy, service.path, "absence",
                                               "clear", "alice")
                assert done.returncode == 0, done.stderr
                back = await run_call(Call(args=("201",), dials=["noanswer"] * 2),
                                      *server.address)
                return away, back
        finally:
            await service.stop(1)

    away, back = asyncio.run(go())
    assert dials(away) == ['EXEC Dial "PJSIP/203,20"\n', 'EXEC Dial "PJSIP/204,20"\n']
    # Her desk, no mobile (her choice), then only @reception (her order, bernard dropped).
    assert dials(back) == ['EXEC Dial "PJSIP/201,20"\n', 'EXEC Dial "PJSIP/203&PJSIP/204,20"\n']
    assert back.variables_set["MAILCALL_GREETING"] == "unavailable"


def test_a_locked_store_routes_from_the_policy_alone_and_says_why_once(tmp_path, caplog):
    policy, runtime, service = setup(tmp_path)
    done = mailcall(policy, service.path, "absence", "set", "alice", "--from", AWAY_FROM,
                    "--until", AWAY_UNTIL, "--backup", "carole")
    assert done.returncode == 0, done.stderr
    holder = sqlite3.connect(service.path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")

    async def go():
        with caplog.at_level(logging.WARNING, logger="mailcall.userstore"):
            await service.start()
            try:
                async with serving(runtime) as server:
                    calls = [await run_call(Call(args=("201",), dials=["answer"]),
                                            *server.address) for _ in range(3)]
                    holder.execute("COMMIT")
                    holder.close()
                    overlay = overlay_of(runtime)
                    overlay.retry_after = 0  # instead of waiting 5 s for the retry
                    calls.append(await run_call(Call(args=("201",), dials=["noanswer"] * 3),
                                                *server.address))
                    return calls
            finally:
                await service.stop(1)

    calls = asyncio.run(go())
    for c in calls[:3]:
        assert dials(c) == ['EXEC Dial "PJSIP/201,20"\n']  # the policy alone: alice rings
        assert c.variables_set["MAILCALL_STATUS"] == "ANSWERED"
    assert dials(calls[3])[0] == 'EXEC Dial "PJSIP/203,20"\n'  # the store applies again
    lines = [r.getMessage() for r in caplog.records if r.name == "mailcall.userstore"]
    assert len(lines) == 2, lines
    assert "locked" in lines[0] and str(service.path) in lines[0]
    assert "policy file alone" in lines[0]
    assert "apply again" in lines[1]


def test_the_pin_set_in_the_store_opens_the_greeting_recording_by_phone(tmp_path):
    policy, runtime, service = setup(tmp_path)
    done = subprocess.run([sys.executable, "-m", "mailcall.core.cli", "user", "set", "alice",
                           "--pin", "--policy", str(policy), "--store", str(service.path)],
                          input="1357\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    async def go():
        await service.start()
        try:
            async with serving(runtime) as server:
                new = await run_call(Call(script="greeting", args=("alice",),
                                          get_data=["1357", "1"]), *server.address)
                old = await run_call(Call(script="greeting", args=("alice",),
                                          get_data=["2468", "2468", "2468"]), *server.address)
                return new, old
        finally:
            await service.stop(1)

    new, old = asyncio.run(go())
    assert new.variables_set["MAILCALL_STATUS"] == "GREETING_SAVED"
    assert old.variables_set["MAILCALL_STATUS"] == "AUTH_FAILED"  # the policy file's PIN
