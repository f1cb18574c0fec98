"""The plugin host: every hook documented where declared and in docs/plugins.md, each tested.

The meta-tests follow datasette's: a hook added without documentation or without
a test named ``test_hook_<name>`` somewhere under tests/ fails the suite.
"""

from __future__ import annotations

import asyncio
import inspect
import re
from pathlib import Path

import pytest

from mailcall.core import hookspecs
from mailcall.core.cli import main
from mailcall.core.decisions.plans import CallRequest, Ring
from mailcall.core.decisions.routing import collect_rules, plan_call
from mailcall.core.errors import PolicyInvalid
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host import hookdocs
from mailcall.core.host.plugin_manager import announce_decision, make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.host.serve import start_services, stop_services
from mailcall.core.policy.load import load_policy

from .conftest import EXAMPLE, REPO

HOOKS = {name: fn for name, fn in inspect.getmembers(hookspecs, inspect.isfunction)
         if name.startswith("mailcall_")}
DOCS = (REPO / "docs" / "plugins.md").read_text()
ALL_TESTS = "\n".join(p.read_text() for p in (REPO / "tests").rglob("test_*.py"))


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_documented_where_declared(name):
    doc = inspect.getdoc(HOOKS[name]) or ""
    assert "Called" in doc, f"{name}: say when it is called"
    assert re.search(r"\bReturn", doc), f"{name}: say what it returns"
    for param in inspect.signature(HOOKS[name]).parameters:
        assert param in doc, f"{name}: document parameter {param!r}"


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_is_in_the_plugin_docs_with_its_exact_signature(name):
    sig = str(inspect.signature(HOOKS[name])).replace("'", "")
    assert f"### `{name}{sig}`" in DOCS


def test_plugin_docs_match_the_specifications():
    assert DOCS.endswith(hookdocs.render()), (
        "docs/plugins.md is stale: run python -m mailcall.core.host.hookdocs docs/plugins.md")


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_has_its_own_test(name):
    assert re.search(rf"def test_hook_{name}\b", ALL_TESTS), f"write test_hook_{name}"


def test_builtin_plugins_are_registered_through_entry_points():
    pm = make_plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert {"rules", "agi", "deposit", "sieve", "channels"} <= names
    # Each built-in is loaded from the entry-point group, like a third-party plugin.
    from_dists = {pm.get_name(plugin) for plugin, _dist in pm.list_plugin_distinfo()}
    assert {"rules", "agi", "deposit", "sieve", "channels"} <= from_dists
    pm.check_pending()  # every hookimpl matches a hookspec


def test_plugins_command_lists_versions(capsys):
    assert main(["plugins", "--json"]) == 0
    import json

    listed = {p["name"]: p for p in json.loads(capsys.readouterr().out)}
    assert listed["rules"]["version"] == "0.1.0"
    assert "mailcall_call_rules" in listed["rules"]["hooks"]


def test_disabling_a_plugin(monkeypatch, capsys):
    monkeypatch.setenv("MAILCALL_DISABLE_PLUGINS", "sieve")
    assert main(["plugins", "--json"]) == 0
    assert '"sieve"' not in capsys.readouterr().out


class DirectoryPlugin:
    @hookimpl
    def mailcall_directory_users(self, organisation):
        assert organisation["domain"] == "stockinox.example"
        return [{"id": "zoe", "name": "Zoé Hr", "email": "zoe@stockinox.example",
                 "profile": "office", "extensions": ["299"]}]


def test_hook_mailcall_directory_users():
    pm = make_plugin_manager(entrypoints=False)
    pm.register(DirectoryPlugin())
    policy = load_policy(EXAMPLE, pm=pm)
    assert policy.by_extension["299"] == "zoe"

    class Clash:
        @hookimpl
        def mailcall_directory_users(self, organisation):
            return [{"id": "alice", "name": "X", "email": "x@stockinox.example",
                     "profile": "office"}]

    pm.register(Clash())
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(EXAMPLE, pm=pm)
    assert "users.alice" in str(exc.value)


class MusicOnHoldRule:
    name = "operator"
    description = "Ring the operator before voicemail."
    order = 750

    def apply(self, ctx):
        if ctx.user is not None:
            ctx.ring_user(ctx.policy.users["david"], 5, "operator")


def test_hook_mailcall_call_rules(capsys):
    pm = make_plugin_manager()

    class Plugin:
        @hookimpl
        def mailcall_call_rules(self):
            return [MusicOnHoldRule()]

    pm.register(Plugin())
    policy = load_policy(EXAMPLE)
    rules = collect_rules(pm.hook.mailcall_call_rules())
    plan = plan_call(policy, CallRequest("203", "", policy.local(
        __import__("datetime").datetime(2026, 12, 1, 10))), rules)
    assert [s.who for s in plan.steps if isinstance(s, Ring)] == ["carole", "david"]
    assert plan.steps[-1].kind == "voicemail"  # the extra step sits before voicemail (800)


def test_hook_mailcall_after_decision(capsys):
    seen = []

    class Audit:
        @hookimpl
        def mailcall_after_decision(self, kind, request, decision):
            seen.append((kind, request.callee, decision.callee))

    class Broken:
        @hookimpl
        def mailcall_after_decision(self, kind, request, decision):
            raise RuntimeError("audit database down")

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Audit())
    pm.register(Broken())
    policy = load_policy(EXAMPLE)
    plan = plan_call(policy, CallRequest("201"))
    announce_decision(pm, "call", plan.request, plan)  # the broken plugin is only logged
    assert seen == [("call", "201", "alice")]


def test_hook_mailcall_policy_checks():
    class Strict:
        @hookimpl
        def mailcall_policy_checks(self, policy):
            return [f"users.{u}: no mobile" for u, user in policy.users.items()
                    if user.mobile is None]

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Strict())
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(EXAMPLE, pm=pm)
    assert "users.carole: no mobile" in str(exc.value)


def test_hook_mailcall_register_commands(capsys, monkeypatch):
    class Hello:
        @hookimpl
        def mailcall_register_commands(self, subparsers):
            p = subparsers.add_parser("hello", help="say hello to a user")
            p.add_argument("user")
            p.set_defaults(handler=lambda args, loader: print(loader().users[args.user].name)
                           or 0)

    real = make_plugin_manager

    def with_hello(**kw):
        pm = real(**kw)
        pm.register(Hello())
        return pm

    monkeypatch.setattr("mailcall.core.cli.make_plugin_manager", with_hello)
    assert main(["hello", "alice", "--policy", str(EXAMPLE)]) == 0
    assert capsys.readouterr().out.strip() == "Alice Martin"


class FakeService:
    def __init__(self, name, log):
        self.name, self.log = name, log

    async def start(self):
        self.log.append(f"start {self.name}")

    async def stop(self, grace):
        self.log.append(f"stop {self.name}")


def test_hook_mailcall_depositor():
    class Depot:
        async def accept(self, message):
            return "id-1"

    class Plugin:
        @hookimpl
        def mailcall_depositor(self, runtime):
            return Depot()

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Plugin())
    runtime = Runtime(load_policy(EXAMPLE), pm)
    asyncio.run(start_services(runtime))
    assert asyncio.run(runtime.deposit(object())) == "id-1"


def test_hook_mailcall_services():
    log: list[str] = []

    class Plugin:
        @hookimpl
        def mailcall_services(self, runtime):
            return [FakeService("a", log), FakeService("b", log)]

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Plugin())
    runtime = Runtime(load_policy(EXAMPLE), pm)

    async def cycle():
        services = await start_services(runtime)
        await stop_services(services, grace=1)

    asyncio.run(cycle())
    assert log == ["start a", "start b", "stop b", "stop a"]


def test_failed_start_stops_what_started():
    log: list[str] = []

    class Bad(FakeService):
        async def start(self):
            raise OSError("address already in use")

    class Plugin:
        @hookimpl
        def mailcall_services(self, runtime):
            return [FakeService("a", log), Bad("b", log)]

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Plugin())
    with pytest.raises(OSError):
        asyncio.run(start_services(Runtime(load_policy(EXAMPLE), pm)))
    assert log == ["start a", "stop a"]


def test_docs_name_every_builtin_plugin():
    for name in ("rules", "agi", "deposit", "sieve", "channels"):
        assert f"`{name}`" in DOCS or f"`mailcall.plugins.{name}`" in DOCS
    assert Path(REPO / "plugins" / "__init__.py").read_text().count("``") >= 5
