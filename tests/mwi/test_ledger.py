"""Coalescing and never-a-wrong-count rules of the lamp, without I/O (times passed in)."""

from __future__ import annotations

import pytest

from mailcall.mwi.counts import Counts, counts
from mailcall.mwi.ledger import Ledger


def drain(ledger: Ledger, now: float) -> list[tuple[str, Counts]]:
    out = []
    while (item := ledger.take(now)) is not None:
        out.append(item)
        ledger.sent(*item)
    return out


def test_only_changes_are_due():
    ledger = Ledger(min_interval=0)
    assert ledger.observe("a@mailcall", counts(1, 0))
    assert drain(ledger, 0) == [("a@mailcall", Counts(1, 0))]
    assert not ledger.observe("a@mailcall", counts(1, 0))  # same as published: nothing
    assert drain(ledger, 1) == []


def test_ami_down_keeps_only_the_latest_state_per_mailbox():
    ledger = Ledger(min_interval=0)
    for i in range(1000):
        ledger.observe("a@mailcall", counts(i % 7, 0))
        ledger.observe("b@mailcall", counts(0, i % 5))
    assert ledger.due == 2  # not a growing queue
    item = ledger.take(0)
    ledger.unsent(item[0])  # AMI down while sending
    ledger.observe("a@mailcall", counts(3, 3))
    assert sorted(drain(ledger, 1)) == [("a@mailcall", Counts(3, 3)),
                                        ("b@mailcall", Counts(0, 999 % 5))]


def test_flood_is_rate_limited_and_the_last_state_wins():
    ledger = Ledger(min_interval=0.25)
    sent = []
    t = 0.0
    for i in range(100):  # 100 changes in one second
        t = i * 0.01
        ledger.observe("a@mailcall", counts(i % 2, 1 - i % 2))
        sent += drain(ledger, t)
    ledger.observe("a@mailcall", counts(0, 1))  # the last change
    while ledger.due:
        t += 0.05
        sent += drain(ledger, t)
    assert 3 <= len(sent) <= 6
    assert sent[-1] == ("a@mailcall", Counts(0, 1))


def test_change_while_sending_is_sent_after():
    ledger = Ledger(min_interval=0)
    ledger.observe("a@mailcall", counts(1, 0))
    item = ledger.take(0)
    ledger.observe("a@mailcall", counts(2, 0))
    ledger.sent(*item)
    assert drain(ledger, 1) == [("a@mailcall", Counts(2, 0))]


def test_failures_change_nothing_and_are_told_once():
    ledger = Ledger(min_interval=0)
    ledger.observe("a@mailcall", counts(2, 1))
    drain(ledger, 0)
    assert ledger.failed("a@mailcall", "auth")
    assert not ledger.failed("a@mailcall", "auth")
    assert ledger.known("a@mailcall") == Counts(2, 1) and ledger.due == 0
    ledger.republish_all()  # Asterisk restarted while IMAP is down: last known, never a guess
    assert drain(ledger, 1) == [("a@mailcall", Counts(2, 1))]


@pytest.mark.parametrize("bad", [-1, 1.5, True, 10**7, "1"])
def test_counts_refuse_what_is_not_a_count(bad):
    with pytest.raises(ValueError, match="not a message count"):
        Counts(bad, 0)


def test_a_mailbox_retired_while_its_update_is_in_flight():
    """Retired (the user left) while its MWIUpdate was on the wire: the late acceptance
    must not write 'published' back, or a re-added user with the same counts would never
    be sent again after Asterisk got the delete."""
    ledger = Ledger(min_interval=0.0)
    ledger.observe("a@mailcall", Counts(1, 0))
    mailbox, value = ledger.take(0.0)
    ledger.retire(mailbox)
    ledger.sent(mailbox, value)  # Asterisk's answer arrives after the retirement
    assert ledger.published(mailbox) is None
    assert ledger.take_retired() == mailbox
    ledger.unretire(mailbox)
    assert ledger.observe(mailbox, Counts(1, 0))  # re-added: due again
    assert ledger.take(1.0) == (mailbox, Counts(1, 0))


def test_a_delete_that_could_not_be_sent_is_dropped_once_the_mailbox_is_back():
    ledger = Ledger(min_interval=0.0)
    ledger.observe("a@mailcall", Counts(1, 0))
    ledger.retire("a@mailcall")
    assert ledger.take_retired() == "a@mailcall"
    ledger.delete_again("a@mailcall")  # AMI was down: kept for the next connection
    assert ledger.due == 1
    assert ledger.take_retired() == "a@mailcall"
    ledger.observe("a@mailcall", Counts(2, 0))  # watched again meanwhile
    ledger.delete_again("a@mailcall")
    assert ledger.take_retired() is None  # its counts go out, never a delete after them
