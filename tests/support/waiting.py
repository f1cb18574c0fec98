"""Waiting for something a real peer or a child process does: one polling rule for every test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

INTERVAL = 0.02


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """The first true value of `predicate()` within `timeout` s, else its last (false) value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(INTERVAL)
    return predicate()


async def async_wait_until(predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """:func:`wait_until` inside an event loop: the loop runs while it waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(INTERVAL)
    return predicate()
