"""The lamp's two UNIX sockets on real sockets: the IMAPSieve trigger (Dovecot's script
protocol, serialised by the same module Dovecot's side is tested with) and the control
socket ``mailcall mwi status|sync`` use."""

from __future__ import annotations

import asyncio
import stat

import pytest

from mailcall.mwi import control
from mailcall.mwi.triggers import TriggerListener
from mailcall.sieve.script_protocol import serialize_request


async def exchange(path, data: bytes, timeout: float = 3.0) -> bytes:
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data)
        writer.write_eof()  # as Dovecot's program client ends its input
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_trigger_names_the_user_and_answers_at_once(tmp_path):
    users: list[str] = []
    listener = TriggerListener(tmp_path / "t.sock", users.append)
    await listener.start()
    try:
        request = serialize_request(["mailcall-mwi"], {"USER": "alice@example.org"})
        assert await exchange(listener.path, request) == b"+\n"
        assert users == ["alice@example.org"]
        try:
            dropped = await exchange(listener.path, b"garbage\n" * 3)
        except ConnectionResetError:
            dropped = b""
        assert dropped == b""  # dropped, no answer, no user
        assert users == ["alice@example.org"]
    finally:
        await listener.stop()
    assert not listener.path.exists()


async def test_triggers_over_the_limit_are_answered_and_reported_not_dropped(tmp_path):
    """Connections over max_connections used to be closed unanswered, and the change they
    carried was lost until the next reconcile: now each is answered '-' at once and the
    service is told, to recount everyone once the burst is over."""
    users: list[str] = []
    overflows: list[None] = []
    listener = TriggerListener(tmp_path / "t.sock", users.append,
                               on_overflow=lambda: overflows.append(None),
                               max_connections=2, timeout=5.0)
    await listener.start()
    held = []
    try:
        for _ in range(2):  # two slow clients hold both slots
            held.append(await asyncio.open_unix_connection(str(listener.path)))
        await asyncio.sleep(0.1)
        request = serialize_request(["mailcall-mwi"], {"USER": "bernard@example.org"})
        assert await exchange(listener.path, request) == b"-\n"
        assert listener.overflowed == 1 and len(overflows) == 1
        assert users == []
    finally:
        for _, w in held:
            w.close()
        await listener.stop()


async def test_a_second_listener_does_not_take_over_a_live_socket(tmp_path):
    first = TriggerListener(tmp_path / "t.sock", lambda u: None)
    await first.start()
    try:
        second = TriggerListener(tmp_path / "t.sock", lambda u: None)
        with pytest.raises(OSError, match="another process already serves"):
            await second.start()
    finally:
        await first.stop()
    # A socket file left by a crash (nobody listens) is replaced.
    import socket

    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "t.sock"))
    stale.close()
    third = TriggerListener(tmp_path / "t.sock", lambda u: None)
    await third.start()
    await third.stop()


def test_control_requests_are_checked_before_anything_runs():
    assert control.decode_request(b'{"verb":"sync"}\n') == control.Request("sync")
    assert control.decode_request(control.encode_request(
        control.Request("status", ("alice",)))) == control.Request("status", ("alice",))
    for bad, why in [(b'{"verb":"drop"}\n', "unknown request"),
                     (b"not json\n", "JSON object"),
                     (b'["sync"]\n', "unknown request"),
                     (b'{"verb":"status","users":"alice"}\n', "list of user ids"),
                     (b'{"verb":"sync"}', "one line"),
                     (b'{"verb":"sync","x":"' + b"a" * control.MAX_REQUEST + b'"}\n',
                      "one line")]:
        with pytest.raises(control.ControlError, match=why):
            control.decode_request(bad)


def test_control_socket_defaults_to_the_spool(tmp_path):
    assert control.socket_path(None, tmp_path) == tmp_path / "mwi-control.sock"
    assert control.socket_path("/run/mailcall/mwi.sock", tmp_path) == \
        control.Path("/run/mailcall/mwi.sock")


async def test_control_socket_is_private_and_answers_errors_in_words(tmp_path):
    asked: list[control.Request] = []

    async def serve(request: control.Request) -> dict:
        asked.append(request)
        return {"users": [], "verb": request.verb}

    path = tmp_path / "c.sock"
    listener = control.ControlListener(path, serve)
    await listener.start()
    try:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert await control.ask(path, control.Request("status"), 5) == {
            "users": [], "verb": "status"}
        raw = await exchange(path, b'{"verb":"rm -rf"}\n')
        assert control.decode_reply(raw) == {"error": "unknown request; verbs: status, sync"}
        assert asked == [control.Request("status")]  # the bad request reached nothing
    finally:
        await listener.stop()
    assert await control.ask(path, control.Request("status"), 5) is None  # nobody listens


async def test_a_too_long_socket_path_is_a_clear_error(tmp_path):
    path = tmp_path / ("x" * 120) / "c.sock"
    listener = control.ControlListener(path, None)  # type: ignore[arg-type]
    with pytest.raises(OSError, match=r"at most 107 bytes; set a shorter \[lamp\] "
                                      r"control_socket"):
        await listener.start()


async def test_the_service_recounts_everyone_after_refused_triggers(mail, caplog):
    """Whose lamp a refused trigger was about is unknown: once the burst is quiet, the
    service recounts every mailbox (one WARNING for the burst), so that change is late,
    never lost."""
    import logging

    from mailcall.mwi.service import OVERFLOW_QUIET, MwiService

    caplog.set_level(logging.WARNING, logger="mailcall.mwi")
    service = MwiService(mail.runtime, mail.settings())
    service.triggers.max_connections = 1
    await service.start()
    held = None
    try:
        await service.reconciled()
        before = service.reconciles
        held = await asyncio.open_unix_connection(str(service.triggers.path))
        await asyncio.sleep(0.1)
        request = serialize_request(["mailcall-mwi"], {"USER": mail.email("alice")})
        for _ in range(3):
            assert await exchange(service.triggers.path, request) == b"-\n"
        await asyncio.sleep(OVERFLOW_QUIET / 2)
        assert service.reconciles == before  # not during the burst
        loop = asyncio.get_running_loop()
        deadline = loop.time() + OVERFLOW_QUIET + 10
        while service.reconciles == before:
            assert loop.time() < deadline, "no reconcile after the refused triggers"
            await asyncio.sleep(0.05)
        assert service.reconciles == before + 1  # one for the whole burst
    finally:
        if held is not None:
            held[1].close()
        await service.stop(1.0)
    warned = [r for r in caplog.records if "IMAP triggers at once" in r.getMessage()]
    assert len(warned) == 1


async def test_a_file_that_is_not_a_socket_is_never_removed(tmp_path):
    path = tmp_path / "t.sock"
    path.write_text("the admin's notes\n")
    listener = TriggerListener(path, lambda u: None)
    with pytest.raises(OSError, match="exists and is not a socket: mailcall does not remove"):
        await listener.start()
    assert path.read_text() == "the admin's notes\n"


async def test_the_process_umask_is_left_alone(tmp_path):
    """The socket's mode is set while it is bound but not listening; the umask, which is
    the whole process's (IMAP worker threads create files meanwhile), is never changed."""
    import os

    old = os.umask(0o077)
    try:
        listener = control.ControlListener(tmp_path / "c.sock", None)  # type: ignore[arg-type]
        trigger = TriggerListener(tmp_path / "t.sock", lambda u: None)
        await listener.start()
        await trigger.start()
        assert os.umask(0o077) == 0o077
        assert stat.S_IMODE((tmp_path / "t.sock").stat().st_mode) == 0o666
        assert stat.S_IMODE((tmp_path / "c.sock").stat().st_mode) == 0o600
        await listener.stop()
        await trigger.stop()
    finally:
        os.umask(old)
