"""No silence after PIN #, however long getting in takes: the PIN check queued behind other
callers' checks, a slow IMAP login; and logins take turns for the listing.

Real peers: the private Dovecot of support.py, reached through the TCP relay of
test_flags_and_faults.py (:class:`Relay`) that holds the LOGIN as a slow server does;
the process's real PIN thread (core/policy/pins.py), kept busy as other callers' checks
keep it during a login storm; the scripted caller of phone.py. The figures of the storm
itself (50 callers, one core) are the benchmark's: bench/phonemenu/bench_menu.py.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time

import pytest

from mailcall.agi.session import AgiSession
from mailcall.core.policy import pins
from mailcall.phonemenu.presenting import Presenter
from tests.agi.harness import serving

from .phone import Phone, Press, run_phone
from .support import cleanup, start_mailboxes
from .test_flags_and_faults import AUDIO, ONE_MOMENT, Relay, flags, pin_then, status

AUDIO_COMMAND = ("STREAM FILE", "SAY NUMBER")


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


def call(boxes, phone: Phone, relay: Relay | None = None, timeout: float = 3.0) -> Phone:
    async def go():
        port = boxes.dovecot.imap_port
        if relay is not None:
            port = await relay.start()
        boxes.phone_config().write_text(
            f"[mailstore]\nport = {port}\n"
            f'password_file = "{boxes.work / "imap-phone.secret"}"\ntimeout = {timeout}\n')
        try:
            async with serving(boxes.runtime) as server:
                return await run_phone(phone, *server.address, timeout=30)
        finally:
            if relay is not None:
                await relay.stop()
    return asyncio.run(go())


def sounds_after_pin(phone: Phone) -> list[tuple[float, str]]:
    """(seconds after PIN #, command) of every audio command after the PIN was typed."""
    typed = next(t for t, line in phone.sent_at if "agent-pass" in line)
    return [(t - typed, line) for t, line in phone.sent_at
            if t > typed and line.startswith(AUDIO_COMMAND)]


def longest_silence_until_the_menu(phone: Phone) -> float:
    """Seconds: the longest gap from PIN # to the first audio that is not "one moment
    please" (the fake phone answers stock prompts at once: each gap is counted from
    when a prompt was sent, so a real prompt's own second is counted as silence)."""
    last, longest = 0.0, 0.0
    for at, line in sounds_after_pin(phone):
        longest = max(longest, at - last)
        if "one-moment-please" not in line:
            return longest
        last = at
    raise AssertionError(f"the menu never spoke: {phone.commands}")


class HeldPinThread:
    """The process's one PIN thread kept busy for `seconds`, as the checks of callers who
    typed their PIN just before keep it during a login storm."""

    def __init__(self, seconds: float) -> None:
        self.release = threading.Event()
        self.timer = threading.Timer(seconds, self.release.set)

    def __enter__(self) -> HeldPinThread:
        started = threading.Event()

        def busy() -> None:
            started.set()
            self.release.wait(30)

        pins._check_pool().submit(busy)
        assert started.wait(5), "the PIN thread did not take the job"
        self.timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self.timer.cancel()
        self.release.set()


def test_a_pin_check_queued_behind_others_gets_one_moment_said(boxes):
    """The PIN thread is busy for 2.5 s: "one moment please" comes about 1 s after PIN #
    (the old code said nothing until the check was done), again 2 s later, then the
    menu's counts; the caller gets in."""
    boxes.voicemail("alice", "c1")
    with HeldPinThread(2.5):
        phone = call(boxes, Phone(pin_then()))
    sounds = sounds_after_pin(phone)
    first_at, first = sounds[0]
    assert "one-moment-please" in first, sounds[:3]
    assert 0.9 <= first_at < 1.5, sounds[:3]
    assert longest_silence_until_the_menu(phone) < 2.6, sounds[:5]
    assert phone.streams("^vm-youhave$"), phone.commands  # in the menu: the counts
    assert status(phone) == "MAILBOX_DONE"


def test_a_key_during_one_moment_of_the_pin_check_acts_in_the_menu(boxes):
    """A key (1) typed during that "one moment please" is kept: once in, it listens to
    the first voicemail, ahead of the counts, as a key during a slow IMAP login does."""
    boxes.voicemail("alice", "c1")
    with HeldPinThread(2.0):
        phone = call(boxes, Phone(pin_then(Press(ONE_MOMENT, key="1"),
                                           Press(AUDIO, key="#"))))
    assert not phone.rules, phone.commands
    assert len(phone.streams(r"/vm-\d+$")) == 1
    assert not any("vm-youhave" in c for c in phone.commands)  # typed ahead of the counts
    assert flags(boxes, "Voicemail") == [{"\\Seen"}]


def test_an_imap_login_slower_than_3_s_is_never_3_s_of_silence(boxes):
    """Dovecot lets mailcall in after 4.5 s (within a 6 s timeout): "one moment please"
    after 1 s and every 2 s after it (the old code said it once, then 3.5 s of nothing),
    and the first of them long before the login is done."""
    boxes.voicemail("alice", "c1")
    relay = Relay(boxes.dovecot.imap_port, b" LOGIN ", hold=4.5)
    phone = call(boxes, Phone(pin_then()), relay, timeout=6.0)
    assert relay.fired == 1
    sounds = sounds_after_pin(phone)
    assert "one-moment-please" in sounds[0][1] and sounds[0][0] < 1.5, sounds[:4]
    assert sum("one-moment-please" in line for _t, line in sounds) >= 2, sounds[:5]
    assert longest_silence_until_the_menu(phone) < 2.6, sounds[:5]
    assert phone.streams("^vm-youhave$") and status(phone) == "MAILBOX_DONE"


def test_the_first_voicemail_is_decoded_only_once_its_envelope_is_heard(boxes, monkeypatch):
    """Key 1: the envelope's first sentence is sent to Asterisk before the voicemail's
    fetch and decode start (they used to start first and compete with it for the CPU);
    the audio still follows the envelope. The real fetch, decode and AGI session run:
    only when they start is noted, on mailcall's side."""
    boxes.voicemail("alice", "c1")
    decoding: list[float] = []
    sent: list[tuple[float, str]] = []
    real_decode, real_stream = Presenter._decode, AgiSession.stream_file

    async def noted_decode(self, message):
        decoding.append(time.monotonic())
        return await real_decode(self, message)

    def noted_stream(self, name, *args, **kwargs):
        sent.append((time.monotonic(), name))
        return real_stream(self, name, *args, **kwargs)

    monkeypatch.setattr(Presenter, "_decode", noted_decode)
    monkeypatch.setattr(AgiSession, "stream_file", noted_stream)
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(AUDIO, key="#"))))
    menu = next(t for t, name in sent if name == "vm-onefor")  # 1 is pressed during it
    envelope = next(t for t, name in sent
                    if t > menu and re.search(r"/call-[^/]*/[0-9a-f]{12}-0001$", name))
    assert decoding and decoding[0] > envelope, (decoding, envelope)
    assert len(phone.streams(r"/vm-\d+$")) == 1
