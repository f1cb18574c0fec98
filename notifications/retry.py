"""When a notification that failed for a temporary reason is tried again, and when not.

Exponential backoff with a cap and a total deadline: a notification tells
someone that mail arrived, so it is worth minutes of retrying a relay that
greylists or restarts, but a "new voicemail" SMS that only gets through the
next day is noise; past the deadline it is given up and reported.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Retry:
    first: float = 30.0
    """Seconds before the second attempt."""
    factor: float = 2.0
    cap: float = 900.0
    """No wait between two attempts is longer than this (15 min)."""
    deadline: float = 6 * 3600.0
    """Seconds after acceptance past which no attempt is made (6 h)."""
    jitter: float = 0.1
    """± this fraction, so that a relay back from a fault is not hit by every retry at once."""

    def delay(self, attempts: int) -> float:
        """Seconds to wait after `attempts` failed attempts (1, 2, ...)."""
        base = min(self.cap, self.first * self.factor ** max(attempts - 1, 0))
        return base * (1 + random.uniform(-self.jitter, self.jitter))

    def schedule(self) -> list[float]:
        """The waits without jitter, up to the deadline (for the docs and the tests)."""
        waits, total, n = [], 0.0, 1
        while True:
            wait = min(self.cap, self.first * self.factor ** (n - 1))
            if total + wait > self.deadline:
                return waits
            waits.append(wait)
            total += wait
            n += 1
