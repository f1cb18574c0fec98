"""A wrong PIN whose check is slow: a key typed during the repeated "one moment please"
is dropped, and the wrong PIN counts in the shared lockout.

Real peers as in test_login_storm.py: the private Dovecot, the real AGI server, the
process's real PIN thread kept busy (:class:`HeldPinThread`), the scripted caller.
"""

from __future__ import annotations

from mailcall.agi.pin_guard import PinGuard

from .phone import Phone, Press
from .support import PIN
from .test_flags_and_faults import AUDIO, ONE_MOMENT, flags, status
from .test_login_storm import HeldPinThread, boxes, call  # noqa: F401 - boxes: fixture


def test_a_key_during_one_moment_of_a_wrong_pin_is_dropped_and_the_pin_counted(
        boxes, monkeypatch):  # noqa: F811
    """The PIN thread is busy 3.5 s: "one moment please" twice; 1 is typed during the
    second. The PIN was wrong: the guard counts one failure for alice, the caller is
    asked again, and once in with the right PIN the menu starts with its counts (the 1
    did not carry over to listen to a message); nothing is marked heard."""
    boxes.voicemail("alice", "c1")
    failed: list[str] = []
    real_failed = PinGuard.failed

    def noted_failed(self, account):
        failed.append(account)
        return real_failed(self, account)

    monkeypatch.setattr(PinGuard, "failed", noted_failed)
    with HeldPinThread(3.5):
        phone = call(boxes, Phone([
            Press("GET DATA agent-pass", digits="1357"),
            Press(ONE_MOMENT),
            Press(ONE_MOMENT, key="1"),
            Press("GET DATA agent-pass", digits=PIN)]))
    assert not phone.rules, phone.commands
    assert failed == ["alice"], failed
    assert any(c.startswith("STREAM FILE auth-incorrect") for c in phone.commands), \
        phone.commands  # the caller is told, then asked again
    assert phone.streams("^vm-youhave$"), phone.commands  # the menu began at its start
    assert not phone.streams(AUDIO.split()[-1]) and not phone.streams(r"/vm-\d+$"), \
        phone.commands
    assert flags(boxes, "Voicemail") == [set()]
    assert status(phone) == "MAILBOX_DONE"
