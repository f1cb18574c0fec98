"""What the runtime holds is declared on it, never probed with getattr (issue 11)."""

from __future__ import annotations

from mailcall.agi.pin_guard import PinGuard, shared_guard
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import load_policy
from tests.support import EXAMPLE_POLICY


def runtime() -> Runtime:
    return Runtime(load_policy(EXAMPLE_POLICY), make_plugin_manager(entrypoints=False))


def test_the_pin_guard_is_a_declared_attribute_shared_by_every_prompt():
    rt = runtime()
    assert rt.pin_guard is None  # declared, empty until a PIN prompt asks
    guard = shared_guard(rt)
    assert isinstance(guard, PinGuard) and rt.pin_guard is guard
    assert shared_guard(rt) is guard  # the greeting and the mailbox count together
    other = runtime()
    assert shared_guard(other) is not guard  # per runtime, no module state
    assert isinstance(shared_guard(None), PinGuard)
