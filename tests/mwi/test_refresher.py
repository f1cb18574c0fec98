"""The refresher's order and coalescing, with a count function on real worker threads.

The counts here are a dict read by the workers (what IMAP would say); the IMAP side
is tested on a real Dovecot in test_counts.py and test_live.py.
"""

from __future__ import annotations

import asyncio
import threading
import time

from mailcall.mwi.counts import Counts
from mailcall.mwi.refresher import Refresher


async def test_a_poke_during_a_count_is_waited_for_by_settled():
    """The count under way may have read the folder before the change: settled() must give
    the count after it (it used to resolve on the stale one)."""
    truth = {"alice": Counts(1, 0)}
    inside = threading.Event()
    release = threading.Event()
    seen: list[Counts] = []

    def count(user: str) -> Counts:
        value = truth[user]  # read before the change below
        inside.set()
        release.wait(5)
        return value

    refresher = Refresher(count, lambda u, r: seen.append(r), max_connections=1, debounce=0)
    await refresher.start()
    try:
        refresher.poke("alice")
        await asyncio.get_running_loop().run_in_executor(None, inside.wait, 5)
        truth["alice"] = Counts(2, 0)  # a second voicemail lands while alice is counted
        refresher.poke("alice")
        waiting = asyncio.ensure_future(refresher.settled("alice"))
        await asyncio.sleep(0.05)
        inside.clear()
        release.set()
        await asyncio.wait_for(waiting, 5)
        assert seen == [Counts(1, 0), Counts(2, 0)]  # settled only after the second count
    finally:
        release.set()
        await refresher.stop()


async def test_a_poke_goes_before_the_rest_of_a_reconcile():
    """A trigger for a user a reconcile already counted is served next, not after the
    whole pass (at 10,000 mailboxes that was 20-40 s of a lamp behind)."""
    order: list[str] = []

    def count(user: str) -> Counts:
        time.sleep(0.005)
        order.append(user)
        return Counts(0, 0)

    users = [f"u{i:03}" for i in range(200)]
    refresher = Refresher(count, lambda u, r: None, max_connections=1, debounce=0.0)
    await refresher.start()
    try:
        pass_ = asyncio.ensure_future(refresher.count_all(users))
        while len(order) < 20:
            await asyncio.sleep(0.005)
        first = order[0]
        refresher.poke(first)  # counted at the start of the pass; its folder changed since
        poked_at = len(order)
        await asyncio.wait_for(pass_, 30)
        second = [i for i, u in enumerate(order) if u == first][1]
        # One worker: the count in flight when it was poked, then it. Before, it came
        # after the whole pass, some 180 counts later.
        assert second - poked_at <= 1, (poked_at, second)
        assert len(order) == 201
    finally:
        await refresher.stop()


async def test_a_flood_of_pokes_is_one_or_two_counts():
    counted: list[str] = []
    refresher = Refresher(lambda u: (counted.append(u), Counts(0, 0))[1], lambda u, r: None,
                          max_connections=4, debounce=0.05)
    await refresher.start()
    try:
        for _ in range(100):
            refresher.poke("alice")
        await asyncio.sleep(0.01)
        await refresher.settled("alice")
        assert 1 <= len(counted) <= 2
    finally:
        await refresher.stop()


async def test_a_user_poked_during_every_count_does_not_hold_a_reconcile():
    """A reconcile needs one finished count of each user; a user whose folder changes
    during each of their counts (a flood of triggers) must not keep it, and with it
    ``mailcall mwi sync``, waiting for ever."""
    refresher = None
    counted: list[str] = []

    def count(user: str) -> Counts:
        counted.append(user)
        if user == "busy":
            loop.call_soon_threadsafe(refresher.poke, "busy")  # changes during its count
        time.sleep(0.002)
        return Counts(0, 0)

    loop = asyncio.get_running_loop()
    # One worker, and the service's kind of debounce: between two counts of "busy" the
    # reconcile's other users get their turn.
    refresher = Refresher(count, lambda u, r: None, max_connections=1, debounce=0.01)
    await refresher.start()
    try:
        await asyncio.wait_for(refresher.count_all(["busy", "calm"]), 5)
        assert "calm" in counted
    finally:
        await refresher.stop()
