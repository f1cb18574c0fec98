"""The plugin manager: hook specifications plus every plugin of the `mailcall` entry-point group.

Built-in plugins are found through the same entry points as third-party ones,
so an administrator can block or replace any of them the same way.
"""

from __future__ import annotations

import logging
import weakref
from importlib import metadata
from typing import Any

import pluggy

from mailcall.core import hookspecs


def make_plugin_manager(*, entrypoints: bool = True,
                        blocked: tuple[str, ...] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name in blocked:
        pm.set_blocked(name)
    if entrypoints:
        for ep in metadata.entry_points(group=hookspecs.PROJECT):
            if pm.get_plugin(ep.name) or pm.is_blocked(ep.name):
                continue
            try:
                # One at a time, so a broken plugin is named; pluggy records its distribution.
                pm.load_setuptools_entrypoints(hookspecs.PROJECT, name=ep.name)
            except Exception as exc:
                raise PluginLoadError(
                    f"plugin '{ep.name}' ({ep.value}) failed to load: {exc!r}. Uninstall it or "
                    f"fix it; built-in plugins failing here mean a broken installation"
                ) from exc
    return pm


class PluginLoadError(RuntimeError):
    """A plugin named in the `mailcall` entry-point group could not be imported."""


def describe_plugins(pm: pluggy.PluginManager) -> list[dict[str, object]]:
    """Name, module, distribution version and hooks of every loaded plugin."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        version = dist.version if dist else _version_of(plugin)
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or ())
        out.append({"name": name, "module": getattr(plugin, "__name__", repr(plugin)),
                    "distribution": dist.project_name if dist else None,
                    "version": version, "hooks": hooks})
    return out


def _version_of(plugin: object) -> str | None:
    module = getattr(plugin, "__name__", "")
    try:
        return metadata.version(module.split(".")[0]) if module else None
    except metadata.PackageNotFoundError:
        return None


def each_plugin(pm: pluggy.PluginManager, hook: str) -> list[tuple[str, pluggy.HookCaller]]:
    """One caller per plugin implementing `hook`, in registration order, with its name.

    Each is ``pm.subset_hook_caller`` of `hook` without the other implementing
    plugins: the call still goes through ``pm.hook`` (wrappers, tracing and
    ``add_hookcall_monitoring`` see it), yet one plugin's exception or result
    is that plugin's alone. Plugins that only wrap the hook stay in every caller.
    The list is cached per manager until the hook's implementations change.
    """
    impls = getattr(pm.hook, hook).get_hookimpls()
    if not impls:  # the usual case for mailcall_after_decision: no audit plugin installed
        return []
    cache = _EACH.get(pm)
    if cache is None:
        cache = _EACH[pm] = {}
    cached = cache.get(hook)
    if cached is not None and cached[0] == impls:
        return cached[1]
    wrappers = {i.plugin for i in impls if i.wrapper or i.hookwrapper}
    plain = [i for i in impls if not (i.wrapper or i.hookwrapper)]
    callers = []
    for impl in plain:
        others = [o.plugin for o in plain if o.plugin is not impl.plugin
                  and o.plugin not in wrappers]
        callers.append((impl.plugin_name, pm.subset_hook_caller(hook, others)))
    cache[hook] = (impls, callers)  # the HookImpl objects compare by identity
    return callers


_EACH: weakref.WeakKeyDictionary[pluggy.PluginManager, dict[str, tuple[list, list]]] = (
    weakref.WeakKeyDictionary())


def announce(pm: pluggy.PluginManager, hook: str, stands: str, **kwargs: Any) -> None:
    """Call an event hook (results ignored) on every plugin, each through its own subset.

    A plugin that raises is logged with `stands` (what holds anyway, for the admin) and
    the other plugins are still called: one broken plugin never blocks a call or a change.
    """
    for name, call in each_plugin(pm, hook):
        try:
            call(**kwargs)
        except Exception:
            logging.getLogger("mailcall.plugins").exception(
                "plugin %s failed in %s (%s)", name, hook, stands)


def announce_decision(pm: pluggy.PluginManager, kind: str, request: Any, decision: Any) -> None:
    """Call `mailcall_after_decision`; a failing audit plugin is logged, never blocks a call."""
    if not each_plugin(pm, "mailcall_after_decision"):  # the usual case: no audit plugin
        return
    announce(pm, "mailcall_after_decision", f"the {kind} decision stands",
             kind=kind, request=request, decision=decision)
