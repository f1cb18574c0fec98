"""What every plugin returned from a list hook, flattened, each item checked against its contract.

The one place where the host turns a hook's lists into objects it will use, so that
a plugin breaking its contract is named (plugin, hook, what it returned, what was
expected) where it is collected, at start-up or by ``mailcall check``, never where
an attribute is first used in the middle of a call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, overload

import pluggy

from mailcall.core.contracts import CallRule
from mailcall.core.decisions.routing import SortedRules, collect_rules
from mailcall.core.errors import ServiceStartError
from mailcall.core.host.plugin_manager import each_plugin

T = TypeVar("T")


class ContractBroken(ServiceStartError, TypeError):
    """A plugin returned, from a hook, something that is not the hook's contract type.

    A ``ServiceStartError`` (``serve`` prints it and exits 1) and a ``TypeError``
    (the policy loader reports it as a problem of the policy's plugins).
    """

    def __init__(self, plugin: str, hook: str, item: object, expected: str) -> None:
        self.plugin = plugin
        self.hook = hook
        super().__init__(
            f"plugin {plugin!r} returned {type(item).__name__} from {hook}, which is not "
            f"{expected}; see 'mailcall plugins', then fix that plugin or disable it "
            f"(MAILCALL_DISABLE_PLUGINS={plugin})")


@overload
def collected(pm: pluggy.PluginManager, hook: str, contract: type[T], *,
              expected: str | None = None, **kwargs: Any) -> list[T]: ...
@overload
def collected(pm: pluggy.PluginManager, hook: str, contract: tuple[type, ...], *,
              expected: str | None = None, **kwargs: Any) -> list[Any]: ...


def collected(pm: pluggy.PluginManager, hook: str, contract: Any, *,
              expected: str | None = None, **kwargs: Any) -> list[Any]:
    """Every item of every plugin's list for `hook` (called with `kwargs`), in call order.

    Call order is pluggy's (the plugin registered last first, so a third-party plugin
    comes before the built-in one it overrides); each plugin is called through its own
    ``pm.hook`` subset (:func:`~mailcall.core.host.plugin_manager.each_plugin`), so the
    owner of each item is known. A None batch counts as an empty one. An item that is
    not an instance of `contract` raises :class:`ContractBroken`; `expected` says what
    the contract is in the message (default: its name and module).
    """
    if expected is None:
        names = contract if isinstance(contract, tuple) else (contract,)
        expected = " or ".join(f"a {c.__name__} ({c.__module__})" for c in names)
    out: list[Any] = []
    for plugin, call in reversed(each_plugin(pm, hook)):
        for batch in call(**kwargs):
            try:  # a string or a mapping is iterable, but it is one item, not a list of them
                if isinstance(batch, (str, bytes, Mapping)):
                    raise TypeError(batch)
                items = iter(batch or ())
            except TypeError:
                raise ContractBroken(plugin, hook, batch, f"a list (of {expected})") from None
            for item in items:
                if not isinstance(item, contract):
                    raise ContractBroken(plugin, hook, item, expected)
                out.append(item)
    return out


def call_rules(pm: pluggy.PluginManager) -> SortedRules:
    """Every plugin's call rules, each checked against the contract, in running order."""
    return collect_rules([collected(pm, "mailcall_call_rules", CallRule)])
