"""The AGI handlers and the depositor are collected by the one rule of core/host/collect.py.

Review finding (issue #11): ``collect_handlers`` checked only callability, in its own
words, and ``mailcall_depositor``'s result was used unchecked (a plugin returning a
non-Depositor failed at the first voicemail, in the middle of a call). Now both go
through ``collected_mapping`` / ``chosen``: a broken plugin is named at start-up with the
fix, and ``mailcall serve`` refuses to start with one line, not a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from mailcall.agi.service import HandlerConflict, collect_handlers
from mailcall.core.contracts import Depositor
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.collect import ContractBroken, OfferedTwice, chosen
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.host.serve import run, start_services
from mailcall.core.policy.load import load_policy
from mailcall.deposit.spool_depositor import SpoolDepositor
from mailcall.plugins import agi as agi_plugin
from mailcall.plugins import deposit as deposit_plugin

from .conftest import EXAMPLE
from .test_serve import free_port, serve_command


async def _hello(session, runtime):
    return "OK"


class Handlers:
    """A third party's ``mailcall_agi_handlers`` returning whatever it is given."""

    def __init__(self, result) -> None:
        self.result = result

    @hookimpl
    def mailcall_agi_handlers(self, runtime):
        return self.result


class Depot:
    async def accept(self, message):
        return "depot-1"


class Offers:
    """A third party's ``mailcall_depositor`` returning whatever it is given."""

    def __init__(self, result) -> None:
        self.result = result

    @hookimpl
    def mailcall_depositor(self, runtime):
        return self.result


def runtime_with(*plugins: tuple[str, object], tmp_path: Path) -> Runtime:
    pm = make_plugin_manager(entrypoints=False)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return Runtime(load_policy(EXAMPLE), pm, overrides={
        "spool_dir": str(tmp_path / "spool"), "greetings_dir": str(tmp_path / "greetings"),
        "agi_listen": "127.0.0.1:0"})


# ------------------------------------------------------------------ AGI handlers


NAMES = ("script names (1 to 64 letters, digits, '.', '_' or '-', starting with a letter or "
         "digit)")
HANDLERS = "async handler(session, runtime) functions"


@pytest.mark.parametrize(("result", "shown", "expected"), [
    (["hello"], "list", f"a mapping of {NAMES} to {HANDLERS}"),
    ("hello", "str", f"a mapping of {NAMES} to {HANDLERS}"),
    ({"hello": "not a function"}, "str for 'hello'", HANDLERS),
    ({"bad/name": _hello}, "the key 'bad/name'", NAMES),
    ({"hello?x=1": _hello}, "the key 'hello?x=1'", NAMES),
    ({"": _hello}, "the key ''", NAMES),
    ({42: _hello}, "the key 42", NAMES),
    ({"evil\u202e\nname": _hello}, "the key 'evil\\u202e\\nname'", NAMES),
])
def test_a_bad_handler_mapping_names_the_plugin_and_the_fix(tmp_path, result, shown, expected):
    rt = runtime_with(("agi", agi_plugin), ("acme-phone", Handlers(result)), tmp_path=tmp_path)
    with pytest.raises(ContractBroken) as exc:
        collect_handlers(rt)
    assert exc.value.plugin == "acme-phone" and exc.value.hook == "mailcall_agi_handlers"
    assert str(exc.value) == (
        f"plugin 'acme-phone' returned {shown} from mailcall_agi_handlers, which is not "
        f"{expected}; see 'mailcall plugins', then fix that plugin or disable it "
        "(MAILCALL_DISABLE_PLUGINS=acme-phone)")


def test_good_names_and_none_are_collected(tmp_path):
    rt = runtime_with(("agi", agi_plugin), ("acme-phone", Handlers({"Hello.v2_x-1": _hello})),
                      ("quiet", Handlers(None)), tmp_path=tmp_path)
    handlers = collect_handlers(rt)
    assert handlers["Hello.v2_x-1"] is _hello
    assert {"route", "voicemail", "fax", "greeting"} <= set(handlers)


def test_a_script_offered_twice_is_the_same_error_family(tmp_path):
    rt = runtime_with(("agi", agi_plugin), ("acme-phone", Handlers({"fax": _hello})),
                      tmp_path=tmp_path)
    with pytest.raises(HandlerConflict) as exc:
        collect_handlers(rt)
    assert isinstance(exc.value, OfferedTwice) and exc.value.plugins == ("acme-phone", "agi")
    assert str(exc.value) == ("AGI script 'fax' is offered by both plugin 'acme-phone' and "
                              "plugin 'agi': block one of them or rename the script")


# ------------------------------------------------------------------ the depositor


def test_a_non_depositor_is_named_at_start_not_at_the_first_voicemail(tmp_path):
    rt = runtime_with(("acme-depot", Offers(object())), tmp_path=tmp_path)
    with pytest.raises(ContractBroken) as exc:
        asyncio.run(start_services(rt))
    assert str(exc.value) == (
        "plugin 'acme-depot' returned object from mailcall_depositor, which is not a Depositor "
        "(async accept(message) -> spool id); see 'mailcall plugins', then fix that plugin or "
        "disable it (MAILCALL_DISABLE_PLUGINS=acme-depot)")


def test_two_depositors_are_refused_naming_both(tmp_path):
    rt = runtime_with(("one", Offers(Depot())), ("two", Offers(Depot())),
                      ("none", Offers(None)), tmp_path=tmp_path)
    with pytest.raises(OfferedTwice) as exc:
        asyncio.run(start_services(rt))
    assert exc.value.plugins == ("two", "one")
    assert str(exc.value).startswith(
        "the depositor (mailcall_depositor) is offered by both plugin 'two' and plugin 'one': "
        "keep one")


def test_a_third_party_depositor_replaces_the_built_in_spool(tmp_path):
    """The spool is the default (trylast): it is used alone, and replaced by another plugin's
    depositor without blocking the deposit plugin (which still delivers what its spool holds)."""
    alone = runtime_with(("deposit", deposit_plugin), tmp_path=tmp_path)
    assert isinstance(chosen(alone.pm, "mailcall_depositor", Depositor, expected="a Depositor",
                             offered="the depositor", fix="", runtime=alone), SpoolDepositor)
    depot = Depot()
    rt = runtime_with(("deposit", deposit_plugin), ("acme-depot", Offers(depot)),
                      tmp_path=tmp_path)
    assert chosen(rt.pm, "mailcall_depositor", Depositor, expected="a Depositor",
                  offered="the depositor", fix="", runtime=rt) is depot
    nobody = runtime_with(("none", Offers(None)), tmp_path=tmp_path)
    assert chosen(nobody.pm, "mailcall_depositor", Depositor, expected="a Depositor",
                  offered="the depositor", fix="", runtime=nobody) is None


@pytest.mark.parametrize("plugin", [("acme-depot", Offers(object())),
                                    ("acme-phone", Handlers({"bad name": _hello}))])
def test_serve_refuses_a_broken_plugin_with_one_line(tmp_path, caplog, plugin):
    caplog.set_level(logging.INFO, logger="mailcall.serve")
    rt = runtime_with(("agi", agi_plugin), plugin, tmp_path=tmp_path)
    assert asyncio.run(run(rt)) == 1
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is None
    line = errors[0].getMessage()
    assert line.startswith(f"cannot start: plugin '{plugin[0]}' returned ")
    assert "\n" not in line and f"MAILCALL_DISABLE_PLUGINS={plugin[0]}" in line


# ------------------------------------------------------------------ a real `mailcall serve`

BROKEN_PLUGIN = '''\
"""A third-party mailcall plugin whose depositor is not one."""
from mailcall.core.hookspecs import hookimpl


@hookimpl
def mailcall_depositor(runtime):
    return "not a depositor"
'''


def test_mailcall_serve_with_an_installed_broken_plugin_says_which_in_one_line(tmp_path):
    """Installed as a site would (a distribution with a ``mailcall`` entry point on the path),
    the plugin stops ``mailcall serve`` before anything listens, naming it, with no traceback."""
    site = tmp_path / "site"
    (site / "acme_depot-0.1.dist-info").mkdir(parents=True)
    (site / "acme_depot.py").write_text(BROKEN_PLUGIN)
    (site / "acme_depot-0.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: acme-depot\nVersion: 0.1\n")
    (site / "acme_depot-0.1.dist-info" / "entry_points.txt").write_text(
        textwrap.dedent("""\
            [mailcall]
            acme-depot = acme_depot
            """))
    policy = tmp_path / "policy.toml"
    shutil.copy(EXAMPLE, policy)
    env = {k: v for k, v in os.environ.items() if k != "MAILCALL_DISABLE_PLUGINS"}
    env["PYTHONPATH"] = str(site)
    out = subprocess.run(serve_command(policy, free_port(), tmp_path / "spool",
                                       tmp_path / "greetings"),
                         capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    (line,) = [x for x in out.stderr.splitlines() if " ERROR " in x]
    assert line.endswith(
        "cannot start: plugin 'acme-depot' returned str from mailcall_depositor, which is not a "
        "Depositor (async accept(message) -> spool id); see 'mailcall plugins', then fix that "
        "plugin or disable it (MAILCALL_DISABLE_PLUGINS=acme-depot)")
