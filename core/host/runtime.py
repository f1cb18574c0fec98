"""The one object a running `mailcall serve` hands to every adapter.

It holds the current policy snapshot (swapped whole on reload), the plugin
manager and the command-line overrides. Adapters receive it as an argument;
nothing is kept in module globals, so tests can run several runtimes side by side.
"""

from __future__ import annotations

import gc
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

from mailcall.core.contracts import Depositor
from mailcall.core.decisions.deposits import Deposit
from mailcall.core.policy.model import Policy

if TYPE_CHECKING:
    from mailcall.agi.pin_guard import PinGuard
    from mailcall.notifications.notice import MailNotice
    from mailcall.userstore.overlay import StoreOverlay


class Notifier(Protocol):
    """Who takes the notifications of delivered mail, voicemail and fax
    (``mailcall.notifications.Dispatcher`` by default)."""

    def submit(self, notice: MailNotice) -> Awaitable[bool]:
        """Queue `notice` durably; callable from synchronous code (the result may be
        ignored). The awaitable says True once it is on disk, False when it could not
        be stored (already logged)."""
        ...


class Runtime:
    """Shared state of one mailcall process."""

    def __init__(
        self,
        policy: Policy,
        pm: pluggy.PluginManager,
        *,
        policy_path: Path | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self._policy = policy
        self.pm = pm
        self.policy_path = policy_path
        self.overrides = dict(overrides or {})
        self.depositor: Depositor | None = None
        self.notifier: Notifier | None = None
        """The notification service shared by the Sieve bridge and the deposit worker,
        set by the channels plugin (None: no channel plugin loaded)."""
        self.user_overlay: StoreOverlay | None = None
        """The user store as decisions read it (``mailcall.userstore.overlay``), attached
        by the ``userstore`` plugin's service while it runs; None: the policy alone
        (``decision_policy(runtime)`` is then ``runtime.policy``)."""
        self.pin_guard: PinGuard | None = None
        """The one count of wrong PINs of this process, shared by every PIN prompt (greeting,
        mailbox): made by the first plugin that asks (``mailcall.agi.pin_guard.shared_guard``)."""
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)
        """Where "now" comes from; tests replace it to decide at a chosen time."""

    def now(self) -> datetime:
        """The current time, aware, in the organisation's time zone."""
        return self.clock().astimezone(self._policy.organisation.timezone)

    @property
    def policy(self) -> Policy:
        return self._policy

    def replace_policy(self, policy: Policy) -> None:
        """Swap in a new snapshot; decisions under way keep the one they started with."""
        self._policy = policy
        freeze_snapshot()

    def setting(self, name: str) -> Any:
        """A server setting: the command-line override if given, else the policy's value."""
        if self.overrides.get(name) is not None:
            return self.overrides[name]
        return getattr(self._policy.server, name)

    async def deposit(self, message: Deposit) -> str:
        if self.depositor is None:
            raise RuntimeError("no deposit service is running (is the deposit plugin loaded?)")
        return await self.depositor.accept(message)


def freeze_snapshot() -> None:
    """Move what is alive now (the compiled policy above all) out of the cyclic GC's sight.

    A snapshot is immutable and can hold millions of objects; letting every full
    collection walk it adds tens of microseconds to unlucky calls (p99). A
    snapshot replaced by a reload is still freed by reference counting once no
    call uses it; frozen objects only escape the cycle collector, and a
    snapshot holds no reference cycles.
    """
    gc.collect()
    gc.freeze()
