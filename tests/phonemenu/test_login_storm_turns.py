"""Logins take turns for the listing (phonemenu/admission.py): arrival order, a few at a
time, and a wait that is bounded. Pure asyncio: the turns are the admission's own logic;
the calls that use them are tested in test_login_storm.py and measured by the bench."""

from __future__ import annotations

import asyncio

import pytest

from mailcall.phonemenu.admission import Admission


def test_turns_are_taken_in_arrival_order_a_few_at_a_time():
    async def go():
        admission = Admission(slots=2, wait=10)
        order: list[int] = []
        busy = 0
        most = 0

        async def login(n: int) -> None:
            nonlocal busy, most
            async with admission.turn() as got:
                assert got
                order.append(n)
                busy += 1
                most = max(most, busy)
                await asyncio.sleep(0.02)
                busy -= 1

        tasks = []
        for n in range(8):
            tasks.append(asyncio.ensure_future(login(n)))
            await asyncio.sleep(0)  # arrival order: 0, 1, 2...
        await asyncio.gather(*tasks)
        return order, most, admission.waiting

    order, most, waiting = asyncio.run(go())
    assert order == list(range(8))
    assert most == 2
    assert waiting == 0


def test_a_turn_waited_for_too_long_is_taken_anyway():
    """A server slow to list must not hold the queue without bound: past `wait`, a login
    goes ahead without a turn, and gives none back."""
    async def go():
        admission = Admission(slots=1, wait=0.1)
        async with admission.turn() as first:
            async with admission.turn() as second:
                pass
        async with admission.turn() as third:  # the slot came back once, not twice
            fourth = asyncio.ensure_future(_enter(admission))
            await asyncio.sleep(0.2)
            late = await fourth
        return first, second, third, late

    assert asyncio.run(go()) == (True, False, True, False)


async def _enter(admission: Admission) -> bool:
    async with admission.turn() as got:
        return got


def test_an_admission_needs_a_slot():
    with pytest.raises(ValueError, match="at least one slot"):
        Admission(slots=0)


def test_a_waiter_cancelled_as_its_turn_comes_leaks_no_turn():
    """The caller hangs up just as the turn is handed to them (the holder leaves and the
    waiter is cancelled in the same loop step): the waiter ends cancelled, and the slot
    is free for the next login, once (asyncio.wait_for on 3.11 could swallow that
    cancellation or keep the slot)."""
    async def go():
        admission = Admission(slots=1, wait=10)
        inside = asyncio.Event()
        leave = asyncio.Event()
        entered: list[str] = []

        async def holder() -> None:
            async with admission.turn():
                inside.set()
                await leave.wait()

        async def waiter() -> None:
            async with admission.turn():
                entered.append("waiter")
                await asyncio.sleep(10)

        held = asyncio.ensure_future(holder())
        await inside.wait()
        queued = asyncio.ensure_future(waiter())
        await asyncio.sleep(0.01)
        assert admission.waiting == 1
        leave.set()
        await asyncio.sleep(0)  # the holder leaves: the semaphore hands the turn on...
        queued.cancel()  # ...and the caller is gone in that same step
        await held
        outcome = await asyncio.gather(queued, return_exceptions=True)
        free = admission._free._value
        again = await asyncio.wait_for(_enter(admission), 1)  # a turn, not a wait
        return outcome, entered, free, again, admission._free._value, admission.waiting

    outcome, entered, free, again, after, waiting = asyncio.run(go())
    assert isinstance(outcome[0], asyncio.CancelledError), outcome
    assert entered == []
    assert (free, again, after, waiting) == (1, True, 1, 0)


def test_a_queued_waiter_cancelled_gives_nothing_back():
    """A waiter cancelled while queued took no turn and gives none back: the slots stay
    as many as there are (not one more)."""
    async def go():
        admission = Admission(slots=1, wait=10)
        async with admission.turn() as got:
            assert got
            queued = asyncio.ensure_future(_enter(admission))
            await asyncio.sleep(0.01)
            queued.cancel()
            outcome = await asyncio.gather(queued, return_exceptions=True)
            during = admission._free._value
        return outcome, during, admission._free._value, admission.waiting

    outcome, during, after, waiting = asyncio.run(go())
    assert isinstance(outcome[0], asyncio.CancelledError)
    assert (during, after, waiting) == (0, 1, 0)


def test_an_error_inside_a_turn_gives_the_turn_back():
    async def go():
        admission = Admission(slots=1, wait=10)
        with pytest.raises(RuntimeError, match="listing broke"):
            async with admission.turn():
                raise RuntimeError("listing broke")
        return admission._free._value, await asyncio.wait_for(_enter(admission), 1)

    assert asyncio.run(go()) == (1, True)
