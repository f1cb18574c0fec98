"""What every plugin returned from a hook, each part checked against the hook's contract.

The one place where the host turns a hook's results into objects it will use, so that
a plugin breaking its contract is named (plugin, hook, what it returned, what was
expected) where it is collected, at start-up or by ``mailcall check``, never where
an attribute is first used in the middle of a call. Hooks return one of three shapes,
each with its function here and the same two errors: a list (:func:`collected`), a
mapping whose keys two plugins must not share (:func:`collected_mapping`), and one
object that only one plugin may offer (:func:`chosen`). Where a list's items are
named (media, formats, channels by medium) and a third-party plugin may override
a built-in one, :func:`collected_by_name` is the one rule of who wins.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, overload

import pluggy

from mailcall.core.contracts import CallRule
from mailcall.core.decisions.routing import SortedRules, collect_rules
from mailcall.core.errors import ServiceStartError
from mailcall.core.host.plugin_manager import each_plugin
from mailcall.core.text import display_text

T = TypeVar("T")

log = logging.getLogger("mailcall.plugins")


class ContractBroken(ServiceStartError, TypeError):
    """A plugin returned, from a hook, something that is not the hook's contract type.

    A ``ServiceStartError`` (``serve`` prints it and exits 1) and a ``TypeError``
    (the policy loader reports it as a problem of the policy's plugins).
    """

    def __init__(self, plugin: str, hook: str, item: object, expected: str, *,
                 shown: str | None = None) -> None:
        self.plugin = plugin
        self.hook = hook
        what = type(item).__name__ if shown is None else shown
        super().__init__(
            f"plugin {plugin!r} returned {what} from {hook}, which is not "
            f"{expected}; see 'mailcall plugins', then fix that plugin or disable it "
            f"(MAILCALL_DISABLE_PLUGINS={plugin})")


class OfferedTwice(ServiceStartError):
    """Two plugins offer what only one may: the same key of a mapping hook, or the one
    object of a single-result hook. Both are named, so the admin knows what to block."""

    def __init__(self, what: str, plugins: Sequence[str], fix: str) -> None:
        self.plugins = tuple(plugins)
        names = [f"plugin {name!r}" for name in self.plugins]
        both = (f"both {names[0]} and {names[1]}" if len(names) == 2
                else ", ".join(names[:-1]) + f" and {names[-1]}")
        super().__init__(f"{what} is offered by {both}: {fix}")


@overload
def collected(pm: pluggy.PluginManager, hook: str, contract: type[T], *,
              expected: str | None = None, check: Callable[[Any], str | None] | None = None,
              **kwargs: Any) -> list[T]: ...
@overload
def collected(pm: pluggy.PluginManager, hook: str, contract: tuple[type, ...], *,
              expected: str | None = None, check: Callable[[Any], str | None] | None = None,
              **kwargs: Any) -> list[Any]: ...


def collected(pm: pluggy.PluginManager, hook: str, contract: Any, *,
              expected: str | None = None, check: Callable[[Any], str | None] | None = None,
              **kwargs: Any) -> list[Any]:
    """Every item of every plugin's list for `hook` (called with `kwargs`), in call order.

    Call order is pluggy's (the plugin registered last first, so a third-party plugin
    comes before the built-in one it overrides); each plugin is called through its own
    ``pm.hook`` subset (:func:`~mailcall.core.host.plugin_manager.each_plugin`), so the
    owner of each item is known. A None batch counts as an empty one. An item that is
    not an instance of `contract` raises :class:`ContractBroken`; `expected` says what
    the contract is in the message (default: its name and module). `check`, when
    given, sees each item that passed and returns what is wrong with it (shown in the
    :class:`ContractBroken`) or None: the parts of a contract ``isinstance`` cannot
    see, such as what an attribute holds.
    """
    return [item for _, item in _owned(pm, hook, contract, expected, check, kwargs)]


def collected_by_name(pm: pluggy.PluginManager, hook: str, contract: type[T], *, name: str,
                      what: str, expected: str | None = None,
                      check: Callable[[Any], str | None] | None = None,
                      **kwargs: Any) -> dict[str, T]:
    """The items of `hook` (as :func:`collected`) by their attribute `name`, one per name.

    The documented override rule (docs/plugins.md): for a name offered twice, the item
    first in call order wins, so a third-party plugin (registered later, called first)
    replaces the built-in one without blocking the rest of it. Each item overridden is
    said in one INFO line naming `what` it is ("audio format"), both plugins and how
    to get the other one back. An item whose `name` is not a string raises
    :class:`ContractBroken`.
    """
    if expected is None:
        expected = f"a {contract.__name__} ({contract.__module__})"
    out: dict[str, T] = {}
    owners: dict[str, str] = {}
    for plugin, item in _owned(pm, hook, contract, expected, check, kwargs):
        key = getattr(item, name)
        if not isinstance(key, str):
            raise ContractBroken(plugin, hook, item, f"{expected} with a string {name}",
                                 shown=f"a {type(item).__name__} whose {name} is "
                                       f"{display_text(repr(key), 80)}")
        if key not in owners:
            owners[key], out[key] = plugin, item
        elif owners[key] == plugin:
            log.info("plugin %r offers the %s %r twice (%s): the first one is used",
                     plugin, what, key, hook)
        else:
            log.info("the %s %r of plugin %r is overridden by plugin %r, called first "
                     "(%s); to use %r's, disable the other: MAILCALL_DISABLE_PLUGINS=%s",
                     what, key, plugin, owners[key], hook, plugin, owners[key])
    return out


def _owned(pm: pluggy.PluginManager, hook: str, contract: Any, expected: str | None,
           check: Callable[[Any], str | None] | None,
           kwargs: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(plugin, item) for every item of `hook`, in call order, each checked."""
    if expected is None:
        names = contract if isinstance(contract, tuple) else (contract,)
        expected = " or ".join(f"a {c.__name__} ({c.__module__})" for c in names)
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
                wrong = None if check is None else check(item)
                if wrong is not None:
                    raise ContractBroken(plugin, hook, item, expected, shown=wrong)
                yield plugin, item


def collected_mapping(pm: pluggy.PluginManager, hook: str, *, key: Callable[[Any], bool],
                      key_expected: str, value: Callable[[Any], bool], value_expected: str,
                      offered: Callable[[Any], str], fix: str,
                      conflict: type[OfferedTwice] = OfferedTwice,
                      **kwargs: Any) -> dict[Any, Any]:
    """Every plugin's mapping for `hook` merged into one, each key and value checked.

    In call order, as :func:`collected`. A None batch counts as an empty mapping; a
    batch that is not a mapping, a key `key` refuses or a value `value` refuses raises
    :class:`ContractBroken`, saying what was expected (`key_expected`, `value_expected`)
    and showing the key as the plugin wrote it. A key two plugins offer raises `conflict`, an
    :class:`OfferedTwice` naming both, with `offered(key)` saying what the key is and
    `fix` what to do: neither plugin silently wins.
    """
    out: dict[Any, Any] = {}
    owners: dict[Any, str] = {}
    for plugin, call in reversed(each_plugin(pm, hook)):
        for batch in call(**kwargs):
            if batch is None:
                continue
            if not isinstance(batch, Mapping):
                raise ContractBroken(plugin, hook, batch, (
                    f"a mapping of {key_expected} to {value_expected}"))
            for name, item in batch.items():
                if not key(name):
                    raise ContractBroken(plugin, hook, name, key_expected, shown=(
                        f"the key {display_text(repr(name), 80)}"))
                if not value(item):
                    raise ContractBroken(plugin, hook, item, value_expected, shown=(
                        f"{type(item).__name__} for {display_text(repr(name), 80)}"))
                if name in owners:
                    raise conflict(offered(name), (owners[name], plugin), fix)
                owners[name] = plugin
                out[name] = item
    return out


def chosen(pm: pluggy.PluginManager, hook: str, contract: type[T], *, expected: str,
           offered: str, fix: str, **kwargs: Any) -> T | None:
    """The one object a single-result (``firstresult``) hook's plugins offer, checked;
    None if none does.

    Every plugin is called (each through its own subset, as :func:`collected`), and
    those returning None leave the choice to others. A plugin may mark its
    implementation ``@hookimpl(trylast=True)`` to say it offers the default: it is
    used only when no other plugin offers one, so a third-party object replaces a
    built-in one without blocking the built-in plugin. Two offers of the same rank
    raise :class:`OfferedTwice` naming them (`offered` says what they offer, `fix`
    what to do), rather than letting
    registration order pick one silently; an offer that is not an instance of
    `contract` raises :class:`ContractBroken`.
    """
    defaults = {impl.plugin_name for impl in getattr(pm.hook, hook).get_hookimpls()
                if impl.trylast}
    offers: list[tuple[str, Any]] = []
    for plugin, call in reversed(each_plugin(pm, hook)):
        item = call(**kwargs)
        if item is None:
            continue
        if not isinstance(item, contract):
            raise ContractBroken(plugin, hook, item, expected)
        offers.append((plugin, item))
    preferred = [offer for offer in offers if offer[0] not in defaults]
    rank = preferred or offers
    if len(rank) > 1:
        raise OfferedTwice(offered, [plugin for plugin, _ in rank], fix)
    return rank[0][1] if rank else None


def call_rules(pm: pluggy.PluginManager) -> SortedRules:
    """Every plugin's call rules, each checked against the contract, in running order."""
    return collect_rules([collected(pm, "mailcall_call_rules", CallRule)])
