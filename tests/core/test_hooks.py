"""The plugin host: every hook documented where declared and in docs/plugins.md, each tested.

The meta-tests follow datasette's: a hook added without documentation or without
a test named ``test_hook_<name>`` somewhere under tests/ fails the suite.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import tomllib
from datetime import UTC, datetime
from importlib import metadata

import pytest

from mailcall import plugins as plugins_package
from mailcall.core import hookspecs
from mailcall.core.cli import main
from mailcall.core.decisions.plans import CallRequest, Ring
from mailcall.core.decisions.routing import collect_rules, plan_call
from mailcall.core.errors import PolicyInvalid, ServiceStartError
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host import hookdocs
from mailcall.core.host.collect import call_rules
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


def builtin_plugins() -> dict[str, str]:
    """name -> module of every built-in plugin, from the installed entry points.

    They must be the ones pyproject.toml declares: a plugin added there but not yet
    installed (``pip install -e .``) would otherwise be missed by every test here.
    """
    installed = {ep.name: ep.value for ep in metadata.entry_points(group="mailcall")
                 if ep.dist is not None and ep.dist.name == "mailcall"}
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())[
        "project"]["entry-points"]["mailcall"]
    assert installed == declared, "the installed metadata is stale: run pip install -e ."
    assert installed, "no built-in plugin found in the mailcall entry points"
    return installed


def test_builtin_plugins_are_registered_through_entry_points():
    builtin = builtin_plugins()
    pm = make_plugin_manager()
    names = {name for name, _ in pm.list_name_plugin()}
    assert set(builtin) <= names
    # Each built-in is loaded from the entry-point group, like a third-party plugin.
    from_dists = {pm.get_name(plugin): plugin.__name__
                  for plugin, _dist in pm.list_plugin_distinfo()}
    assert {n: from_dists.get(n) for n in builtin} == builtin
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
    pm = make_plugin_manager()
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
    rules = call_rules(pm)
    assert [r.name for r in rules] == [r.name for r in collect_rules(
        pm.hook.mailcall_call_rules())]
    plan = plan_call(policy, CallRequest("203", "", policy.local(
        __import__("datetime").datetime(2026, 12, 1, 10))), rules)
    assert [s.who for s in plan.steps if isinstance(s, Ring)] == ["carole", "david"]
    assert plan.steps[-1].kind == "voicemail"  # the extra step sits before voicemail (800)


def test_a_call_rule_that_breaks_the_contract_is_named_before_any_call(capsys, monkeypatch):
    """Call rules are collected like every other list hook (core/host/collect.py): a rule
    without `apply` is named with its plugin at collection, by the CLI too, instead of an
    AttributeError in the middle of a live call."""
    from mailcall.core.host.collect import ContractBroken

    class NotARule:
        name, description, order = "half", "no apply", 10

    class Plugin:
        @hookimpl
        def mailcall_call_rules(self):
            return [NotARule()]

    pm = make_plugin_manager()
    pm.register(Plugin(), name="half-rule")
    with pytest.raises(ContractBroken, match="plugin 'half-rule' returned NotARule from "
                                             "mailcall_call_rules"):
        call_rules(pm)
    import mailcall.core.cli as cli

    real = cli.make_plugin_manager

    def with_plugin(**kwargs):
        made = real(**kwargs)
        made.register(Plugin(), name="half-rule")
        return made

    monkeypatch.setattr(cli, "make_plugin_manager", with_plugin)
    assert main(["route", "--policy", str(EXAMPLE), "--to", "203"]) == 1
    err = capsys.readouterr().err
    assert "plugin 'half-rule' returned NotARule" in err
    assert "MAILCALL_DISABLE_PLUGINS=half-rule" in err
    assert "Traceback" not in err


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
    plan = plan_call(policy, CallRequest("201", "", datetime(2026, 12, 1, 10, 5, tzinfo=UTC)))
    announce_decision(pm, "call", plan.request, plan)  # the broken plugin is only logged
    assert seen == [("call", "201", "alice")]


def test_hook_mailcall_policy_checks():
    class Strict:
        @hookimpl
        def mailcall_policy_checks(self, policy):
            return [f"users.{u}: no mobile" for u, user in policy.users.items()
                    if user.mobile is None]

    pm = make_plugin_manager()
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


def test_collected_flattens_in_call_order_and_names_the_plugin_that_broke_the_contract():
    """One collection for every list hook (core/host/collect.py): items in pluggy's call
    order (tryfirst first, then the last registered), None batches skipped; an item that
    is not the contract's type, or a batch that is not a list, names the plugin that
    returned it (the four collections of before said only 'a plugin')."""
    from mailcall.core.contracts import Service
    from mailcall.core.host.collect import ContractBroken, collected

    log: list[str] = []

    class Early:
        @hookimpl(tryfirst=True)
        def mailcall_services(self, runtime):
            return [FakeService("early", log)]

    class Quiet:
        @hookimpl
        def mailcall_services(self, runtime):
            return None

    class Late:
        @hookimpl
        def mailcall_services(self, runtime):
            return [FakeService("late", log), FakeService("later", log)]

    pm = make_plugin_manager(entrypoints=False)
    for name, plugin in (("early", Early()), ("quiet", Quiet()), ("late", Late())):
        pm.register(plugin, name=name)
    runtime = Runtime(load_policy(EXAMPLE), pm)
    plain = [s.name for batch in pm.hook.mailcall_services(runtime=runtime) for s in batch or ()]
    got = [s.name for s in collected(pm, "mailcall_services", Service, runtime=runtime)]
    assert got == plain == ["early", "late", "later"]

    class NoStop:
        name = "half"

        async def start(self):
            log.append("start half")

    class Half:
        @hookimpl
        def mailcall_services(self, runtime):
            return [NoStop()]

    pm.register(Half(), name="half-a-service")
    with pytest.raises(ContractBroken) as exc:
        asyncio.run(start_services(runtime))
    assert str(exc.value).startswith(
        "plugin 'half-a-service' returned NoStop from mailcall_services, which is not a "
        "Service (name: str, async start(), async stop(grace))")
    assert "MAILCALL_DISABLE_PLUGINS=half-a-service" in str(exc.value)
    assert log == []  # nothing was started: the contract is checked before any start
    # serve prints it and exits 1, like any service that cannot start:
    assert isinstance(exc.value, ServiceStartError)

    class Single:
        @hookimpl
        def mailcall_services(self, runtime):
            return FakeService("not in a list", log)

    pm.unregister(name="half-a-service")
    pm.register(Single(), name="single")
    with pytest.raises(ContractBroken, match="plugin 'single' returned FakeService from "
                       "mailcall_services, which is not a list"):
        collected(pm, "mailcall_services", Service, runtime=runtime)


def test_docs_name_every_builtin_plugin():
    """docs/plugins.md has one table row per built-in plugin and plugins/__init__.py one
    bullet, each naming exactly the entry points: a plugin added without both fails."""
    builtin = builtin_plugins()
    found = re.findall(r"^\| `([a-z_]+)` \| `(mailcall\.plugins\.[a-z_]+)` \|", DOCS, re.M)
    assert dict(found) == builtin and len(found) == len(builtin), (
        "docs/plugins.md: the table of built-in plugins is not the entry points, once each")
    bullets = re.findall(r"^- ``([a-z_]+)``: \S", plugins_package.__doc__ or "", re.M)
    assert sorted(bullets) == sorted(builtin) and len(bullets) == len(set(bullets)), (
        "plugins/__init__.py: list every built-in plugin once, as - ``name``: what it does")


CHAT_POLICY = """
[organisation]
name = "T"
domain = "t.example"
[channels.chat]
url = "https://chat.t.example/hook"
[profiles.chatty.features]
notify = { mail = true, media = ["chat", "email"] }
voicemail = { formats = ["wav"] }
fax = { formats = ["tiff"] }
[users.a]
name = "A"
email = "a@t.example"
profile = "chatty"
chat_handle = "@a"
"""


def _chat_medium():
    from mailcall.core.contracts import Medium, Setting, UserKey

    def handle(value):
        return None if value.startswith("@") else f"'{value}' must start with @, e.g. @alice"

    return Medium("chat", address=UserKey(Setting("chat_handle", validate=handle)),
                  settings=(Setting("url", kind="url", required=True),
                            Setting("retries", kind="integer", default=2, low=0, high=5)),
                  checks=lambda s: ([] if s.get("url", "").startswith("https://")
                                    else ["url: must be https://, the token travels in it"]))


class ChatPlugin:
    @hookimpl
    def mailcall_notification_media(self):
        return [_chat_medium()]


def test_hook_mailcall_notification_media():
    """A medium declared by a plugin is validated and routed by the core from that alone:
    its settings, its per-user address key, its own checks, with file, key and line."""
    from mailcall.core.decisions.mailing import plan_mail
    from mailcall.core.decisions.plans import MailRequest, Notify
    from mailcall.core.policy.load import compile_text

    pm = make_plugin_manager()
    with pytest.raises(PolicyInvalid) as exc:  # without the plugin, "chat" is nobody's
        compile_text(CHAT_POLICY, name="p.toml", pm=pm)
    found = [str(p) for p in exc.value.problems]
    assert any("p.toml:5: channels.chat: no installed plugin offers the medium 'chat'" in p
               for p in found), found
    assert any("profiles.chatty.features.notify.media.0: 'chat' is not one of sms, webhook, "
               "file, email: the notification media the installed plugins offer" in p
               for p in found), found
    assert any("users.a.chat_handle: unknown key 'chat_handle'" in p for p in found), found

    pm.register(ChatPlugin())
    policy = compile_text(CHAT_POLICY, name="p.toml", pm=pm)
    assert dict(policy.channels.of("chat")) == {"url": "https://chat.t.example/hook",
                                                 "retries": 2}
    plan = plan_mail(policy, MailRequest("a@t.example", "c@example.com",
                                         datetime(2026, 12, 1, 10, 5, tzinfo=UTC)))
    assert plan.actions == (Notify("a", "chat", "@a",
                                   "profile chatty notifies new mail by chat"),)

    bad = (CHAT_POLICY.replace('url = "https://chat.t.example/hook"',
                               'url = "http://chat.t.example/hook"')
           .replace('chat_handle = "@a"', 'chat_handle = "a"'))
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(bad, name="p.toml", pm=pm)
    found = [str(p) for p in exc.value.problems]
    assert "p.toml:6: channels.chat.url: must be https://, the token travels in it" in found
    assert "p.toml:15: users.a.chat_handle: 'a' must start with @, e.g. @alice" in found, found
    flat = CHAT_POLICY.replace('[channels.chat]\nurl = "https://chat.t.example/hook"',
                               '[channels]\nchat_url = "https://chat.t.example/hook"\n'
                               'chat_retries = 9')
    with pytest.raises(PolicyInvalid) as exc:  # the flat spelling, checked the same way
        compile_text(flat, name="p.toml", pm=pm)
    assert [str(p) for p in exc.value.problems] == [
        "p.toml:7: channels.chat_retries: must be between 0 and 5, not 9"]
    # The medium's required setting, asked for once a user's medium is "chat":
    no_url = CHAT_POLICY.replace('[channels.chat]\nurl = "https://chat.t.example/hook"\n', "")
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(no_url, name="p.toml", pm=pm)
    assert ("users.a.preferred_medium: is 'chat' but [channels] chat_url (or [channels.chat] "
            "url) is not set") in str(exc.value)


class PngFirstPage:
    """A third-party fax converter: the first page as a PNG (module level: it must pickle)."""

    format = "png"
    mime_type = "image/png"
    extension = "png"

    def convert(self, tiff_path: str, out_path: str) -> None:
        from PIL import Image

        with Image.open(tiff_path) as im:
            im.convert("1").save(out_path, format="PNG")


def test_hook_mailcall_fax_converters():
    """Fax formats are the ones plugins' converters declare: the deposit plugin's pdf and
    tiff, and any other a plugin adds; a name nobody converts to is refused with its line.
    (They were names declared apart from any converter: a profile naming a plugin's
    format got a fax mail the built-in spool could not make.)"""
    from mailcall.core.policy.load import compile_text

    pm = make_plugin_manager()
    pm.register(ChatPlugin())
    offered = [c.format for batch in pm.hook.mailcall_fax_converters() for c in batch]
    assert offered == ["pdf", "tiff"]
    assert compile_text(CHAT_POLICY, pm=pm).profiles["chatty"].features.fax.formats == ("tiff",)
    png = CHAT_POLICY.replace('formats = ["tiff"]', 'formats = ["png"]')
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(png, name="p.toml", pm=pm)
    assert ("p.toml:10: profiles.chatty.features.fax.formats.0: 'png' is not one of pdf, "
            "tiff: the fax formats the installed plugins offer") in str(exc.value)

    class Png:
        @hookimpl
        def mailcall_fax_converters(self):
            return [PngFirstPage()]

    pm.register(Png(), name="png-fax")
    # Declared by its converter, so the name is valid, and the spool worker gets it too.
    assert compile_text(png, name="p.toml", pm=pm).profiles["chatty"].features.fax.formats \
        == ("png",)
    from mailcall.deposit.fax_converters import converters_in
    from mailcall.plugins.deposit import encoders_from

    assert sorted(converters_in(encoders_from(pm))) == ["pdf", "png", "tiff"]

    class Sloppy:
        @hookimpl
        def mailcall_fax_converters(self):
            return [("djvu", "image/vnd.djvu")]

    pm.register(Sloppy(), name="sloppy-fax")
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(png, name="p.toml", pm=pm)
    assert ("plugin 'sloppy-fax' returned tuple from mailcall_fax_converters, which is not "
            "a FaxConverter (mailcall.core.contracts)") in str(exc.value)


def test_a_declaration_that_breaks_its_contract_is_named_not_probed():
    """A hook result that is not the contract's type is a policy error naming the hook and
    the type (it used to be probed with attributes, and failed wherever it was first used)."""
    from mailcall.core.policy.load import compile_text

    class Sloppy:
        @hookimpl
        def mailcall_notification_media(self):
            return [{"name": "chat"}]

    pm = make_plugin_manager()
    pm.register(Sloppy())
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(CHAT_POLICY, pm=pm)
    assert ("returned dict from mailcall_notification_media, which is not a Medium "
            "(mailcall.core.contracts)") in str(exc.value)


def test_after_decision_goes_through_pm_hook_and_isolates_each_plugin():
    """announce_decision called each plugin's function directly: monitoring and wrappers
    never saw it. Now every plugin is called through pm.hook, still one failure apart."""
    seen, monitored = [], []

    class Audit:
        @hookimpl
        def mailcall_after_decision(self, kind, request, decision):
            seen.append(kind)

    class Broken:
        @hookimpl
        def mailcall_after_decision(self, kind, request, decision):
            raise RuntimeError("audit database down")

    class Timing:
        @hookimpl(wrapper=True)
        def mailcall_after_decision(self, kind, request, decision):
            monitored.append("wrapped")
            return (yield)

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Audit(), name="audit")
    pm.register(Broken(), name="broken")
    pm.register(Timing(), name="timing")
    undo = pm.add_hookcall_monitoring(
        lambda name, impls, kw: monitored.append((name, [i.plugin_name for i in impls])),
        lambda outcome, name, impls, kw: None)
    announce_decision(pm, "call", None, None)
    announce_decision(pm, "mail", None, None)
    undo()
    assert seen == ["call", "mail"]
    assert monitored[:4] == [("mailcall_after_decision", ["audit", "timing"]), "wrapped",
                             ("mailcall_after_decision", ["broken", "timing"]), "wrapped"]
    pm.unregister(name="audit")  # the per-plugin callers follow registrations
    announce_decision(pm, "deposit", None, None)
    assert seen == ["call", "mail"]


def test_agi_handlers_are_collected_through_pm_hook_and_a_clash_names_both():
    """collect_handlers called impl.function to know who offered each script; now each
    plugin is called through pm.hook, and a name offered twice still names both plugins."""
    from mailcall.agi.service import HandlerConflict, collect_handlers

    async def handler(session, runtime):
        return "OK"

    class One:
        @hookimpl
        def mailcall_agi_handlers(self, runtime):
            return {"hello": handler}

    class Two:
        @hookimpl
        def mailcall_agi_handlers(self, runtime):
            return {"hello": handler}

    pm = make_plugin_manager(entrypoints=False)
    pm.register(One(), name="one")
    calls = []
    pm.add_hookcall_monitoring(lambda name, impls, kw: calls.append(name),
                               lambda outcome, name, impls, kw: None)
    runtime = Runtime(load_policy(EXAMPLE), pm)
    assert collect_handlers(runtime) == {"hello": handler}
    assert calls == ["mailcall_agi_handlers"]
    pm.register(Two(), name="two")
    with pytest.raises(HandlerConflict) as exc:
        collect_handlers(runtime)
    assert "AGI script 'hello' is offered by both plugin 'two' and plugin 'one'" in str(exc.value)
