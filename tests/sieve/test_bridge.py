"""The bridge over a real UNIX socket: always an answer, in time, fail-open; and the exec client.

What a request says is in test_mail_facts.py, what is decided for it in test_mail_decision.py."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcall.core.errors import ServiceStartError
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import compile_text
from mailcall.deposit.seal import deposit_key, key_path
from mailcall.plugins.channels import notification_service
from mailcall.sieve.bridge import SieveBridge
from mailcall.sieve.exec_client import build_request, client_script
from mailcall.sieve.script_protocol import (
    NEED_DATA,
    Arguments,
    Environment,
    ScriptServerConnection,
    serialize_request,
)
from tests.sieve.support import (
    ALICE_ENV,
    EVENING,
    NO_MAIL_NOTICES,
    OFFICE_HOURS,
    policy_text,
    sealed,
)


class Recorder:
    def __init__(self, medium: str) -> None:
        self.medium = medium
        self.sent: list[tuple] = []

    async def send(self, notification, subject, text) -> None:
        self.sent.append((notification, subject, text))


class RecorderPlugin:
    """Offers the recording channel the way any plugin offers a channel."""

    def __init__(self, channel: Recorder) -> None:
        self.channel = channel

    @hookimpl
    def mailcall_notification_channels(self, runtime):
        return [self.channel]


def make_bridge(tmp_path: Path, spool: Path | None = None, **kw) -> tuple[SieveBridge, Recorder]:
    """A bridge beside the notification service the host builds (the channels plugin's
    collection, with its contract checks), as ``mailcall serve`` runs them."""
    policy = compile_text(policy_text(socket=tmp_path / "mailcall", smtp_port=25,
                                      file_path=tmp_path / "n.jsonl", spool=spool))
    sms = Recorder("sms")
    pm = make_plugin_manager(entrypoints=False)
    pm.register(RecorderPlugin(sms))
    runtime = Runtime(policy, pm)
    runtime.clock = lambda: OFFICE_HOURS
    notification_service(runtime)  # sets runtime.notifier
    return SieveBridge(runtime, tmp_path / "mailcall", **kw), sms


async def start(bridge: SieveBridge) -> None:
    """The notification service first, as serve starts it (the channels plugin is tryfirst)."""
    await bridge.runtime.notifier.start()
    try:
        await bridge.start()
    except BaseException:
        await bridge.runtime.notifier.stop(1)
        raise


async def stop(bridge: SieveBridge) -> None:
    await bridge.stop(1)
    await bridge.runtime.notifier.stop(1)


async def ask(path: Path, raw: bytes, *, shutdown: bool = True) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(raw)
    if shutdown:
        writer.write_eof()
    reply = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return reply


def run(coro):
    return asyncio.run(coro)


def test_notify_answers_then_sends_once(tmp_path: Path):
    async def scenario():
        bridge, sms = make_bridge(tmp_path)
        await start(bridge)
        try:
            data = b"message-id=%3Cm1%40example.net%3E\nsubject=Devis%20%C3%A9t%C3%A9\nfrom=Bob\n"
            req = serialize_request(["notify"], ALICE_ENV, data)
            assert await ask(bridge.path, req) == b"+\n"
            assert await ask(bridge.path, req) == b"+\n"  # the same Message-ID again
            await bridge.notifier.drain()
            return sms.sent
        finally:
            await stop(bridge)

    sent = run(scenario())
    assert len(sent) == 1
    notification, subject, text = sent[0]
    assert notification.user == "alice" and notification.address == "+33612345678"
    assert subject == "Nouveau courriel de Bob"
    assert "Devis été" in text


def test_the_bridge_collects_no_channels_of_its_own(tmp_path: Path, caplog):
    """Issue 11: the bridge used to build its own dispatcher from raw hook results when the
    runtime had none, skipping the Channel checks of the host. Now it only ever uses
    ``runtime.notifier`` (read when a notice is due); without one, the mail is still
    answered and the log says no channel plugin runs."""
    asked: list[object] = []

    class Offering:
        @hookimpl
        def mailcall_notification_channels(self, runtime):
            asked.append(runtime)
            return [object()]  # not a Channel: the host would refuse it at start-up

    policy = compile_text(policy_text(socket=tmp_path / "mailcall", smtp_port=25,
                                      file_path=tmp_path / "n.jsonl"))
    pm = make_plugin_manager(entrypoints=False)
    pm.register(Offering())
    runtime = Runtime(policy, pm)
    runtime.clock = lambda: OFFICE_HOURS
    bridge = SieveBridge(runtime, tmp_path / "mailcall")
    assert bridge.notifier is None and asked == []

    async def scenario():
        await bridge.start()
        try:
            req = serialize_request(["notify"], ALICE_ENV, b"message-id=%3Cm9%40x%3E\n")
            return await ask(bridge.path, req)
        finally:
            await bridge.stop(1)

    assert run(scenario()) == b"+\n"
    assert asked == []
    assert "no notification channel plugin is loaded" in caplog.text

    class Later:
        def __init__(self) -> None:
            self.notices: list[object] = []

        def submit(self, notice):
            self.notices.append(notice)

    later = Later()
    runtime.notifier = later  # a service set up after the bridge is the one used
    assert bridge.notifier is later
    assert run(scenario()) == b"+\n"
    assert [n.recipient for n in later.notices] == [ALICE_ENV["RECIPIENT"]]


def test_nothing_sent_outside_hours_but_still_true(tmp_path: Path):
    async def scenario():
        bridge, sms = make_bridge(tmp_path)
        bridge.runtime.clock = lambda: EVENING
        await start(bridge)
        try:
            reply = await ask(bridge.path, serialize_request(["notify"], ALICE_ENV, b""))
            await bridge.notifier.drain()
            return reply, sms.sent
        finally:
            await stop(bridge)

    assert run(scenario()) == (b"+\n", [])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (lambda spool: b"GARBAGE\n", b"-\n"),
        (lambda spool: serialize_request(["reboot"], ALICE_ENV), b"-\n"),
        (lambda spool: serialize_request(["ping"]), b"+\n"),
        (lambda spool: serialize_request(["folder"], ALICE_ENV, sealed(spool)), b"Voicemail+\n"),
        (lambda spool: serialize_request(["folder"], ALICE_ENV, sealed(
            spool, context="fax-message")), b"Fax+\n"),
        # A Message-Context alone files nothing: the folder is only for a proven deposit.
        (lambda spool: serialize_request(["folder"], ALICE_ENV, b"context=voice-message\n"),
         b"-\n"),
        (lambda spool: serialize_request(["folder"], ALICE_ENV, b""), b"-\n"),
        (lambda spool: serialize_request(["notify"], ALICE_ENV, b"x" * 200_000), b"-\n"),
        (lambda spool: serialize_request(["notify", "nobody@else.example", "x@y"]), b"+\n"),
    ],
)
def test_answers(tmp_path: Path, raw, expected: bytes):
    async def scenario():
        bridge, _ = make_bridge(tmp_path)
        await start(bridge)
        try:
            return await ask(bridge.path, raw(bridge.spool_dir))
        finally:
            await stop(bridge)

    assert run(scenario()) == expected


def test_silent_peer_gets_false_within_the_deadline(tmp_path: Path):
    async def scenario():
        bridge, _ = make_bridge(tmp_path, answer_timeout=0.2)
        await start(bridge)
        try:
            began = time.monotonic()
            reply = await ask(bridge.path, b"VERSION\tscript\t4\t0\n-\nnotify\n", shutdown=False)
            return reply, time.monotonic() - began
        finally:
            await stop(bridge)

    reply, elapsed = run(scenario())
    assert reply == b"-\n"
    assert 0.15 < elapsed < 1.0


def test_request_arriving_in_pieces_is_answered(tmp_path: Path):
    """Most requests are answered in the turn that accepts them; a slow one waits its turn."""
    raw = serialize_request(["notify"], ALICE_ENV, b"subject=x\n")

    async def scenario():
        bridge, _ = make_bridge(tmp_path)
        await start(bridge)
        try:
            reader, writer = await asyncio.open_unix_connection(str(bridge.path))
            for piece in (raw[:7], raw[7:40], raw[40:]):
                writer.write(piece)
                await writer.drain()
                await asyncio.sleep(0.05)
            writer.write_eof()
            reply = await asyncio.wait_for(reader.read(), 5)
            writer.close()
            return reply, bridge.server.open_connections
        finally:
            await stop(bridge)

    assert run(scenario()) == (b"+\n", 0)


def test_internal_error_is_false_not_silence(tmp_path: Path):
    async def scenario():
        bridge, _ = make_bridge(tmp_path)

        def broken(request):
            raise RuntimeError("policy exploded")

        bridge.decider.plan = broken
        await start(bridge)
        try:
            return await ask(bridge.path, serialize_request(["notify"], ALICE_ENV))
        finally:
            await stop(bridge)

    assert run(scenario()) == b"-\n"


def test_socket_permissions_and_clean_stop(tmp_path: Path):
    sock_dir = tmp_path / "sieve-execute"
    sock_dir.mkdir()
    os.chown(sock_dir, 0, 5000)

    async def scenario():
        bridge, _ = make_bridge(sock_dir, spool=tmp_path / "spool")
        await start(bridge)
        st_ = bridge.path.stat()
        await stop(bridge)
        return st_

    st_ = run(scenario())
    assert stat.S_ISSOCK(st_.st_mode)
    assert stat.S_IMODE(st_.st_mode) == 0o660
    assert st_.st_gid == 5000
    assert not (sock_dir / "mailcall").exists()
    assert list(sock_dir.iterdir()) == []


def test_refuses_missing_directory_with_advice(tmp_path: Path):
    bridge, _ = make_bridge(tmp_path / "absent")
    with pytest.raises(OSError, match="does not exist: create it"):
        run(bridge.start())


def test_deposit_key_created_private_at_first_start_and_kept(tmp_path: Path):
    spool = tmp_path / "spool"

    async def start_stop():
        bridge, _ = make_bridge(tmp_path, spool=spool)
        await start(bridge)
        await stop(bridge)

    run(start_stop())
    path = key_path(spool)
    info = path.stat()
    assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == os.geteuid()
    first = path.read_bytes()
    assert len(first) == 65
    run(start_stop())
    assert path.read_bytes() == first  # never replaced


@pytest.mark.parametrize("problem", ["readable by others", "damaged", "a link"])
def test_unsafe_deposit_key_refuses_to_start_and_says_why(tmp_path: Path, problem: str):
    spool = tmp_path / "spool"
    path = key_path(spool)
    deposit_key(spool)
    if problem == "readable by others":
        path.chmod(0o644)
    elif problem == "damaged":
        path.write_text("not a key\n")
    else:
        (tmp_path / "elsewhere").write_bytes(path.read_bytes())
        path.unlink()
        path.symlink_to(tmp_path / "elsewhere")
    bridge, _ = make_bridge(tmp_path, spool=spool)
    with pytest.raises(ServiceStartError, match=str(path)) as caught:
        run(start(bridge))
    assert "restart mailcall" in str(caught.value) or "not a link" in str(caught.value)
    run(stop(bridge))


@given(st.lists(st.text(min_size=1, max_size=30), max_size=4),
       st.dictionaries(st.sampled_from(["USER", "SENDER", "RECIPIENT"]), st.text(max_size=30)),
       st.binary(max_size=100))
def test_exec_client_speaks_the_same_protocol(args, env, data):
    conn = ScriptServerConnection()
    conn.receive_data(build_request(args, env, data))
    conn.receive_data(b"")
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    assert isinstance(events[1], Environment) and dict(events[1].variables) == env
    assert events[2] == Arguments(tuple(args))


def test_exec_client_program(tmp_path: Path):
    program = tmp_path / "mailcall"
    program.write_text(client_script(str(tmp_path / "mailcall.sock")))
    program.chmod(0o755)
    env = {**ALICE_ENV, "PATH": "/usr/bin:/bin"}

    # Daemon down: false at once, with the reason on stderr.
    began = time.monotonic()
    down = subprocess.run([str(program), "notify"], env=env, input=b"", capture_output=True,
                          check=False)
    assert down.returncode == 1
    assert b"daemon not reachable" in down.stderr
    assert time.monotonic() - began < 2.0

    async def scenario():
        bridge, sms = make_bridge(tmp_path)
        bridge.path = tmp_path / "mailcall.sock"
        await start(bridge)
        try:
            loop = asyncio.get_running_loop()
            folder = await loop.run_in_executor(None, lambda: subprocess.run(
                [str(program), "folder"], env=env, input=sealed(bridge.spool_dir),
                capture_output=True, check=False))
            notify = await loop.run_in_executor(None, lambda: subprocess.run(
                [str(program), "notify"], env=env, input=b"message-id=%3Cp%40x%3E\n",
                capture_output=True, check=False))
            await bridge.notifier.drain()
            return folder, notify, sms.sent
        finally:
            await stop(bridge)

    folder, notify, sent = run(scenario())
    assert (folder.returncode, folder.stdout) == (0, b"Voicemail")
    assert notify.returncode == 0
    assert len(sent) == 1


def test_many_simultaneous_deliveries_all_answered(tmp_path: Path):
    """Dovecot connects with a 5 ms timeout: a burst must neither be refused nor left hanging."""
    async def scenario():
        bridge, _ = make_bridge(tmp_path)
        await start(bridge)
        try:
            req = serialize_request(["notify"], ALICE_ENV, b"subject=x\n")
            return await asyncio.gather(*(ask(bridge.path, req) for _ in range(300)))
        finally:
            await stop(bridge)

    assert run(scenario()) == [b"+\n"] * 300


def test_reloaded_policy_applies_to_the_next_mail(tmp_path: Path):
    async def scenario():
        bridge, sms = make_bridge(tmp_path)
        quiet = policy_text(socket=tmp_path / "mailcall", smtp_port=25,
                            file_path=tmp_path / "n.jsonl", changes=NO_MAIL_NOTICES)
        assert not compile_text(quiet).users["alice"].features.notify.mail
        await start(bridge)
        try:
            bridge.runtime.replace_policy(compile_text(quiet))
            await ask(bridge.path, serialize_request(["notify"], ALICE_ENV, b"message-id=a\n"))
            await bridge.notifier.drain()
            return sms.sent
        finally:
            await stop(bridge)

    assert run(scenario()) == []


def test_each_decision_is_announced_to_audit_plugins(tmp_path: Path):
    from mailcall.core.hookspecs import hookimpl

    seen = []

    class Audit:
        @hookimpl
        def mailcall_after_decision(self, kind, request, decision):
            seen.append((kind, request.recipient, decision.user))

    async def scenario():
        bridge, _ = make_bridge(tmp_path)
        bridge.runtime.pm.register(Audit())
        await start(bridge)
        try:
            await ask(bridge.path, serialize_request(["notify"], ALICE_ENV))
        finally:
            await stop(bridge)

    run(scenario())
    assert seen == [("mail", "alice@stockinox.example", "alice")]


def test_a_live_socket_is_not_taken_over_but_a_stale_one_is_replaced(tmp_path: Path):
    """A second bridge on the same path (a second `mailcall serve`) is refused while the
    first answers; the socket a crashed bridge left, which nobody answers, is replaced."""
    from mailcall.core.errors import ServiceStartError

    async def scenario():
        first, _ = make_bridge(tmp_path)
        second, _ = make_bridge(tmp_path)
        await start(first)
        try:
            with pytest.raises(ServiceStartError, match="is listening on the Sieve socket"):
                await start(second)
            await stop(second)
            assert await ask(first.path, serialize_request(["notify"], ALICE_ENV, b"")) != b""
        finally:
            await stop(first)
        stale = socket.socket(socket.AF_UNIX)
        stale.bind(str(first.path))  # bound, never listening: what a crash leaves
        stale.close()
        third, _ = make_bridge(tmp_path)
        await start(third)
        try:
            assert await ask(third.path, serialize_request(["notify"], ALICE_ENV, b"")) != b""
        finally:
            await stop(third)

    run(scenario())
