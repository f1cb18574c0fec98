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
