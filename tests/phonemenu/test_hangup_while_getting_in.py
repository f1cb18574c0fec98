"""A hang-up during the login's "one moment please" leaves no IMAP session open.

Real peers: the private Dovecot of support.py, reached through the relay of
test_flags_and_faults.py holding the LOGIN as a slow server does; the real AGI
server and mail store; the scripted caller of phone.py. What is asserted is what
stays after the call: the connections the relay still carries to Dovecot, and the
store's own slots and open sessions.
"""

from __future__ import annotations

import asyncio

import pytest

from mailcall.phonemenu.mailbox import CallMailbox
from tests.agi.harness import serving

from .phone import Phone, Press, run_phone
from .support import cleanup, start_mailboxes
from .test_flags_and_faults import ONE_MOMENT, Relay, pin_then

HOLD_S = 2.5
"""Dovecot's answer to LOGIN held this long: past "one moment please", within the timeout."""


class CountingRelay(Relay):
    """The relay, with how many client connections it carries now."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.open = 0

    async def _client(self, reader, writer) -> None:
        self.open += 1
        try:
            await super()._client(reader, writer)
        finally:
            self.open -= 1


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


def test_a_hang_up_during_a_slow_login_leaves_no_session_open(boxes, monkeypatch):
    """The caller hangs up during "one moment please" while Dovecot holds the LOGIN:
    once the login thread has ended, the relay carries no connection and every slot of
    the store is free (the old code pushed the session on the call's closed stack after
    the call had ended, and kept it, its connection and its slot, and went on listing)."""
    boxes.voicemail("alice", "c1")
    stores: list = []
    real_close = CallMailbox.close

    async def noted_close(self):
        stores.append(self.call.services.store)
        await real_close(self)

    monkeypatch.setattr(CallMailbox, "close", noted_close)
    relay = CountingRelay(boxes.dovecot.imap_port, b" LOGIN ", hold=HOLD_S)

    async def go():
        port = await relay.start()
        boxes.phone_config().write_text(
            f"[mailstore]\nport = {port}\n"
            f'password_file = "{boxes.work / "imap-phone.secret"}"\ntimeout = 6.0\n')
        try:
            async with serving(boxes.runtime) as server:
                caller = Phone(pin_then(Press(ONE_MOMENT, hangup=True, cut=True)))
                phone = await run_phone(caller, *server.address, timeout=30)
                await asyncio.sleep(HOLD_S + 1.5)  # the held login has been let in by now
                store = stores[0] if stores else None
                left = (relay.open, store and store._slots._value,
                        store and store.settings.max_connections,
                        store and store.open_sessions)
                return phone, left
        finally:
            await relay.stop()

    phone, (connections, free, slots, sessions) = asyncio.run(go())
    assert relay.fired == 1, phone.commands
    assert any("one-moment-please" in c for c in phone.commands), phone.commands
    assert stores, "the call's mailbox was never closed"
    assert connections == 0, f"{connections} IMAP connection(s) still open after the call"
    assert (free, sessions) == (slots, 0), (free, slots, sessions)
