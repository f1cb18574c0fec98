"""The one "one moment please" rule: no dead air of 3 s while the menu waits for work.

Why one module: the mailbox's operations (:meth:`.mailbox.CallMailbox.slow`) and
the actions' slow work (the relay, a message's audio: :func:`.actions_common.waiting`)
wait the same way, so the caller hears the same thing: "one moment please" once
the line has been silent ``SLOW_S`` (:attr:`.saying.Saying.quiet_since`, the end
of the last sound or entry), then again every ``REMIND_S`` (it plays about 1 s),
until the work is done or a bound passes. What a key that cuts the prompt means
differs, so it is handed back to the caller of :func:`over_the_wait`.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mailcall.agi import prompts

from .errors import KeyPressed

if TYPE_CHECKING:
    from .saying import Saying

SLOW_S = 1.0
"""Silence after which work still running gets "one moment please" said."""
REMIND_S = 2.0
"""Then "one moment please" again after each such wait: no silence of 3 s or more."""


async def over_the_wait(saying: Saying, task: asyncio.Future[Any], *,
                        bound: float = math.inf,
                        speak: Callable[[], bool] = lambda: True) -> tuple[bool, str | None]:
    """Wait for `task`, "one moment please" said over the wait while `speak()` holds;
    (whether it finished within `bound` seconds, the last key that cut the prompt).

    The task is never cancelled or awaited for its result here: the caller decides.
    Anything the prompt raises but a key (a hang-up) propagates.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    pause = max(0.0, saying.quiet_since + SLOW_S - loop.time())
    pressed: str | None = None
    while True:
        left = deadline - loop.time()
        if left > 0:
            await asyncio.wait({task}, timeout=min(pause, left))
        if task.done():
            return True, pressed
        if loop.time() >= deadline:
            return False, pressed
        if speak():
            try:
                await saying.stream(prompts.ONE_MOMENT)
            except KeyPressed as exc:
                pressed = exc.digit
            pause = max(0.0, saying.quiet_since + REMIND_S - loop.time())
        else:  # the work still gets its time, in silence
            pause = REMIND_S


__all__ = ["REMIND_S", "SLOW_S", "over_the_wait"]
