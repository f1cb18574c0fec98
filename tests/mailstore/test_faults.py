"""IMAP down, slow, frozen or refusing: MailboxUnavailable within 2 s, and nothing half done."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from mailcall.mailstore import MailboxUnavailable, MailStore
from tests.mailstore.support import ALICE, plain, voice

pytestmark = pytest.mark.dovecot

APOLOGY = 2.0
"""Seconds within which the menu must be able to apologise."""


async def _timed(coro) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        await coro
    except MailboxUnavailable as exc:
        return time.perf_counter() - start, exc
    return time.perf_counter() - start, None


async def _open_and_list(store: MailStore) -> None:
    async with store.session(ALICE) as box:
        await box.voice_messages()


async def test_dovecot_stopped_before_the_call(phone_mail):
    store = phone_mail.store()
    phone_mail.dovecot.stop()
    elapsed, exc = await _timed(_open_and_list(store))
    assert isinstance(exc, MailboxUnavailable) and exc.reason == "unreachable", exc
    assert elapsed < APOLOGY
    assert f"127.0.0.1:{phone_mail.dovecot.imap_port}" in str(exc)


async def test_dovecot_stopped_during_the_call(phone_mail):
    await phone_mail.deposit(voice("call.1"))
    master = int((phone_mail.dovecot.base_dir / "master.pid").read_text())
    async with phone_mail.store().session(ALICE) as box:
        (message,) = await box.voice_messages()
        serving = _imap_processes(master)
        phone_mail.dovecot.stop()
        # This instance's imap processes outlive the master (as with shutdown_clients = no);
        # ending them is what a full stop (or a crash) does to the call's connection.
        for pid in serving:
            os.kill(pid, signal.SIGTERM)
        elapsed, exc = await _timed(box.audio(message))
        assert isinstance(exc, MailboxUnavailable) and exc.reason == "unreachable", exc
        assert elapsed < APOLOGY
        elapsed, exc = await _timed(box.unread_mail())
        assert isinstance(exc, MailboxUnavailable) and exc.reason == "closed"
        assert elapsed < 0.1


@pytest.mark.parametrize("how", ["master", "authzid"])
async def test_wrong_master_password(phone_mail, how, caplog):
    phone_mail.password_file.write_text("not-the-password\n")
    caplog.set_level(logging.WARNING, logger="mailcall.mailstore")
    elapsed, exc = await _timed(_open_and_list(phone_mail.store(login=how)))
    assert isinstance(exc, MailboxUnavailable), exc
    # Dovecot answers a refused login after auth_failure_delay (2 s): the menu has
    # apologised by then (timeout), and the real reason is logged when it comes.
    assert exc.reason in ("auth", "timeout")
    assert elapsed < APOLOGY
    deadline = time.monotonic() + 5
    while "refused" not in caplog.text and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert "refused" in caplog.text and "imap-phone.secret" in caplog.text
    assert "not-the-password" not in caplog.text


async def test_password_file_missing_is_auth_at_once(phone_mail):
    store = MailStore(phone_mail.settings(password_file="/nonexistent/imap-phone.secret"),
                      key=phone_mail.key)
    elapsed, exc = await _timed(_open_and_list(store))
    assert isinstance(exc, MailboxUnavailable) and exc.reason == "auth"
    assert "/nonexistent/imap-phone.secret" in str(exc) and elapsed < 0.5


async def test_silent_server_times_out():
    """A port that accepts and never greets (a hung server, a firewall half open)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        from mailcall.mailstore import MailstoreSettings

        store = MailStore(MailstoreSettings(port=port, password_file="/dev/null"),
                          key=lambda: b"k" * 32, password=lambda: "pw")
        elapsed, exc = await _timed(_open_and_list(store))
    assert isinstance(exc, MailboxUnavailable) and exc.reason in ("timeout", "unreachable")
    assert elapsed < APOLOGY


def _imap_processes(master_pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1: stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        if name == "imap" and int(fields[1]) == master_pid:
            found.append(int(entry.name))
    return found


async def test_frozen_server_during_the_call(phone_mail):
    """Dovecot's imap process stopped (SIGSTOP) under an open session: the operation
    gives up within 2 s, and the call goes on without the mailbox."""
    phone_mail.deliver(plain("Hello", "Hello Alice"))
    master = int((phone_mail.dovecot.base_dir / "master.pid").read_text())
    async with phone_mail.store().session(ALICE) as box:
        unread = await box.unread_mail()
        frozen = _imap_processes(master)
        assert frozen, "no imap process found under the Dovecot master"
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            elapsed, exc = await _timed(box.readable(unread.messages[0]))
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        assert isinstance(exc, MailboxUnavailable) and exc.reason == "timeout", exc
        assert elapsed < APOLOGY


async def test_deposit_key_unreadable(phone_mail):
    def broken() -> bytes:
        raise OSError("cannot read the deposit key /var/spool/mailcall/deposit.key")

    await phone_mail.deposit(voice("call.2"))
    store = MailStore(phone_mail.settings(), key=broken)
    async with store.session(ALICE) as box:
        with pytest.raises(MailboxUnavailable) as caught:
            await box.voice_messages()
    assert caught.value.reason == "key" and "deposit.key" in str(caught.value)


async def test_hang_up_during_a_delete_leaves_it_whole(phone_mail):
    """The call's task cancelled at any moment of move_to_trash: the message is in exactly
    one of Voicemail and Trash, never both, never neither."""
    await phone_mail.deposit(*(voice(f"call.h{i}") for i in range(6)))
    store = phone_mail.store()
    for delay in (0, 0.0005, 0.001, 0.002, 0.005, 0.01):
        async with store.session(ALICE) as box:
            message = (await box.voice_messages())[0]
            task = asyncio.create_task(box.move_to_trash(message))
            await asyncio.sleep(delay)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        in_voice = message.message_id in phone_mail.message_ids("Voicemail")
        in_trash = message.message_id in phone_mail.message_ids("Trash")
        assert in_voice != in_trash, (delay, in_voice, in_trash)


async def test_a_failed_session_gives_its_connection_slot_back(phone_mail):
    """The menu reopens a session after a failure while the failed one's context is still
    open (it ends with the call): with one slot, the new session must still get in."""
    phone_mail.deliver(plain("Hello", "Hello Alice"))
    master = int((phone_mail.dovecot.base_dir / "master.pid").read_text())
    store = phone_mail.store(max_connections=1)
    async with store.session(ALICE) as failed:
        frozen = _imap_processes(master)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            _elapsed, exc = await _timed(failed.unread_mail())
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        assert isinstance(exc, MailboxUnavailable) and exc.reason == "timeout"
        async with store.session(ALICE) as again:
            assert (await again.unread_mail()).count == 1
    async with store.session(ALICE) as last:  # and nothing was released twice
        assert store._slots.locked()
        assert (await last.unread_mail()).count == 1
    assert not store._slots.locked()


def _traced(box, name: str, events: list[tuple[str, str]]):
    """Wrap one of the session's real Mailbox methods (still speaking to Dovecot) so the
    test sees when its thread starts and ends on the connection."""
    real = getattr(box._box, name)

    def traced(*args):
        events.append(("start", name))
        try:
            return real(*args)
        finally:
            events.append(("end", name))

    setattr(box._box, name, traced)


async def test_an_operation_whose_caller_left_keeps_the_connection_until_it_ends(phone_mail):
    """A STORE in flight when its task is cancelled (a hang-up, a cut background fetch):
    the next operation on the same session must not start its thread on the socket before
    that one has its answer — two imaplib threads on one connection mix their replies."""
    phone_mail.deliver(plain("Hello", "Hello Alice"))
    master = int((phone_mail.dovecot.base_dir / "master.pid").read_text())
    async with phone_mail.store().session(ALICE) as box:
        message = (await box.unread_mail()).messages[0]
        events: list[tuple[str, str]] = []
        _traced(box, "set_seen", events)
        _traced(box, "unread_mail", events)
        frozen = _imap_processes(master)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            mark = asyncio.create_task(box.mark_seen(message))
            await asyncio.sleep(0.2)  # the STORE is written; Dovecot is frozen
            mark.cancel()
            await asyncio.gather(mark, return_exceptions=True)
            listing = asyncio.create_task(box.unread_mail())
            await asyncio.sleep(0.3)
            assert ("start", "unread_mail") not in events, events
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        unread = await listing
        assert events.index(("end", "set_seen")) < events.index(("start", "unread_mail"))
        assert unread.count == 0  # the STORE that the cancelled task sent did land


async def test_an_operation_whose_caller_left_is_still_bounded(phone_mail):
    """The same, with the server frozen for good: the abandoned STORE is broken after the
    timeout, and the session's next operation is told the mailbox is gone within 2 s
    instead of waiting forever behind it."""
    phone_mail.deliver(plain("Hello", "Hello Alice"))
    master = int((phone_mail.dovecot.base_dir / "master.pid").read_text())
    async with phone_mail.store().session(ALICE) as box:
        message = (await box.unread_mail()).messages[0]
        frozen = _imap_processes(master)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            mark = asyncio.create_task(box.mark_seen(message))
            await asyncio.sleep(0.1)
            mark.cancel()
            await asyncio.gather(mark, return_exceptions=True)
            elapsed, exc = await _timed(box.unread_mail())
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
    assert isinstance(exc, MailboxUnavailable), exc
    assert elapsed < APOLOGY, elapsed


async def test_an_abandoned_operation_that_failed_on_the_wire_closes_the_session(phone_mail):
    """The abandoned STORE's thread ends with the socket's own timeout (the server frozen):
    nothing more may be written on that connection. The next operation is told the mailbox
    is gone, its command never sent, and within 2 s of the first operation's start (the
    bound runs from when the thread began, not from when its caller left)."""
    phone_mail.deliver(plain("Hello", "Hello Alice"))
    master = int((phone_mail.dovecot.base_dir / "master.pid").read_text())
    async with phone_mail.store().session(ALICE) as box:
        message = (await box.unread_mail()).messages[0]
        events: list[tuple[str, str]] = []
        _traced(box, "unread_mail", events)
        frozen = _imap_processes(master)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            started = time.perf_counter()
            mark = asyncio.create_task(box.mark_seen(message))
            await asyncio.sleep(1.0)  # the caller leaves late, near the bound
            mark.cancel()
            await asyncio.gather(mark, return_exceptions=True)
            _elapsed, exc = await _timed(box.unread_mail())
            since_start = time.perf_counter() - started
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
    assert isinstance(exc, MailboxUnavailable), exc
    assert ("start", "unread_mail") not in events, events
    assert since_start < APOLOGY, since_start
