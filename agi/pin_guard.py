"""Wrong PINs counted across calls, so that a PIN cannot be guessed by calling again.

Three tries per call are not a limit: an attacker hangs up and calls back.
The guard counts wrong PINs per account over a window and, past a threshold,
refuses that account's PIN prompt for a while. The account is the user the
phone call claims to be, or the calling number when it claims nobody, so an
unknown phone is locked out exactly like a known one and the lockout tells an
attacker nothing about which users exist.

One guard per server process, held by the ``greeting`` handler the plugin
builds (no module state); it forgets on restart, which an attacker cannot
trigger. Memory is bounded: at most ``max_accounts`` accounts are tracked,
the stalest dropped first.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from . import prompts
from .safety import caller_text

if TYPE_CHECKING:
    from mailcall.core.host.runtime import Runtime

    from .session import AgiSession

MAX_FAILURES = 5
"""Wrong PINs per account within WINDOW before the account is locked."""
WINDOW = 15 * 60.0
LOCKOUT = 15 * 60.0
MAX_ACCOUNTS = 10_000

PIN_OK = "OK"
PIN_WRONG = "WRONG"
PIN_LOCKED = "AUTH_LOCKED"


class PinGuard:
    def __init__(self, *, max_failures: int = MAX_FAILURES, window: float = WINDOW,
                 lockout: float = LOCKOUT, max_accounts: int = MAX_ACCOUNTS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_failures = max_failures
        self.window = window
        self.lockout = lockout
        self.max_accounts = max_accounts
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked_until: dict[str, float] = {}
        self._pending: dict[str, int] = {}
        """PIN prompts under way per account: a guess counts from the moment it is asked
        for, so parallel calls cannot each get a guess past the limit."""

    def locked_for(self, account: str) -> float:
        """Seconds until `account` may try a PIN again; 0 when it may now."""
        until = self._locked_until.get(account)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._locked_until[account]
            return 0.0
        return left

    def begin(self, account: str) -> bool:
        """May `account` be asked for a PIN now? If so, the guess is counted as under way
        until :meth:`failed`, :meth:`succeeded` or :meth:`abandoned` says how it ended."""
        if self.locked_for(account) > 0:
            return False
        times = self._failures.get(account)
        now = self.clock()
        recent = sum(1 for t in times if t > now - self.window) if times else 0
        pending = self._pending.get(account, 0)
        if recent + pending >= self.max_failures:
            return False
        self._pending[account] = pending + 1
        return True

    def _ended(self, account: str) -> None:
        left = self._pending.get(account, 0) - 1
        if left > 0:
            self._pending[account] = left
        else:
            self._pending.pop(account, None)

    def abandoned(self, account: str) -> None:
        """The guess never came (the caller hung up while being asked)."""
        self._ended(account)

    def failed(self, account: str) -> bool:
        """Count one wrong PIN; True when the account is (now) locked.

        A wrong PIN typed in another call while the account is already locked
        keeps it locked and starts no new count.
        """
        self._ended(account)
        if self.locked_for(account) > 0:
            return True
        now = self.clock()
        times = self._failures.pop(account, None) or deque()
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.max_failures:
            self._locked_until[account] = now + self.lockout
            return True  # the count starts again after the lockout
        self._failures[account] = times  # most recent last
        while len(self._failures) > self.max_accounts:
            self._failures.popitem(last=False)
        if len(self._locked_until) > self.max_accounts:
            for stale in [a for a, t in self._locked_until.items() if t <= now]:
                del self._locked_until[stale]
        return False

    def succeeded(self, account: str) -> None:
        self._ended(account)
        self._failures.pop(account, None)


def shared_guard(runtime: Runtime | None) -> PinGuard:
    """The one guard of a server process, shared by every PIN prompt (greeting, mailbox):
    an attacker switching from one menu to the other meets the same count. Kept on the
    runtime (no module state); a new guard when there is no runtime (tests)."""
    if runtime is None:
        return PinGuard()
    if runtime.pin_guard is None:
        runtime.pin_guard = PinGuard()
    return runtime.pin_guard


async def ask_pin(session: AgiSession, guard: PinGuard, account: str, *, menu: str,
                  check: Callable[[str], Awaitable[bool]], digit_wait_ms: int,
                  log: logging.Logger) -> str:
    """One PIN prompt under `guard`: :data:`PIN_OK`, :data:`PIN_WRONG` or :data:`PIN_LOCKED`.

    The one login step of every PIN prompt (the greeting script, the mailbox), so
    that they cannot drift: the guess counts from the prompt on (parallel calls share
    the one budget), a hang-up or a cancellation while it is asked for counts it as
    abandoned, never as a wrong PIN; a trailing ``#`` (the caller ending the PIN)
    is not part of it; `check` gets the PIN and says whether it is right (off the
    event loop: scrypt is slow). "Wrong PIN" is said here; the caller says goodbye.
    The calling number in the lockout warnings is caller-controlled: it is logged
    cleaned (:func:`~mailcall.agi.safety.caller_text`), `account` is the user claimed
    or the cleaned number. `menu` names the prompt in the warnings ("greeting",
    "mailbox"), written to the menu's own `log`.
    """
    if not guard.begin(account):
        log.warning("%s PIN prompt refused for %s (caller %r): locked for %.0f more "
                    "minute(s) after repeated wrong PINs, or that many being typed in "
                    "other calls", menu, account, caller_text(session.env.callerid),
                    guard.locked_for(account) / 60)
        return PIN_LOCKED
    try:
        pin = (await session.get_data(prompts.ENTER_PIN, digit_wait_ms, 12)).digits
        ok = await check(pin.rstrip("#"))
    except BaseException:
        guard.abandoned(account)
        raise
    if ok:
        guard.succeeded(account)
        return PIN_OK
    if guard.failed(account):
        log.warning("%s: %d wrong PINs for %s within %.0f minutes (last from caller %r): "
                    "PIN prompt locked for %.0f minutes", menu, guard.max_failures, account,
                    guard.window / 60, caller_text(session.env.callerid), guard.lockout / 60)
        return PIN_LOCKED
    await session.stream_file(prompts.WRONG_PIN)
    return PIN_WRONG
