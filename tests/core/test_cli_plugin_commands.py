"""A plugin whose sub-commands cannot be registered costs its own commands, never the others.

`mailcall_register_commands` runs while the parser is built, before any command
runs: a plugin that takes a name already in use or raises must be named with the
fix on one line of stderr, and every other command (`mailcall plugins` first, to
find it) must still work.
"""

from __future__ import annotations

import json

import pytest

import mailcall.core.cli as cli
from mailcall.core.hookspecs import hookimpl

from .conftest import EXAMPLE


class TakesCheck:
    """Registers a command named like a built-in one: argparse's "conflicting subparser"."""

    @hookimpl
    def mailcall_register_commands(self, subparsers):
        subparsers.add_parser("check", help="a second check")


class HalfThenRaises:
    """Adds one command, then fails: what it half-added must not stay behind."""

    @hookimpl
    def mailcall_register_commands(self, subparsers):
        subparsers.add_parser("half", help="never usable")
        raise RuntimeError("settings file /etc/x.toml\nunreadable")


@pytest.fixture
def with_plugin(monkeypatch):
    def install(plugin, name):
        real = cli.make_plugin_manager

        def made(**kwargs):
            pm = real(**kwargs)
            pm.register(plugin, name=name)
            return pm

        monkeypatch.setattr(cli, "make_plugin_manager", made)
    return install


def _one_line_naming(err: str, name: str, what: str) -> str:
    lines = [line for line in err.splitlines() if f"plugin {name!r}" in line]
    assert len(lines) == 1, err
    line = lines[0]
    assert "mailcall_register_commands" in line and what in line, line
    assert f"MAILCALL_DISABLE_PLUGINS={name}" in line, line
    assert "Traceback" not in err
    return line


def test_a_plugin_taking_an_existing_command_name_is_named_and_the_rest_works(
        with_plugin, capsys):
    with_plugin(TakesCheck(), "dup-check")
    assert cli.main(["plugins", "--json", "--policy", str(EXAMPLE)]) == 0
    out = capsys.readouterr()
    assert "dup-check" in {p["name"] for p in json.loads(out.out)}  # the admin can find it
    _one_line_naming(out.err, "dup-check", "conflicting subparser: check")

    assert cli.main(["check", "--policy", str(EXAMPLE)]) == 0  # the built-in check, still
    out = capsys.readouterr()
    assert out.out.startswith("policy OK")
    _one_line_naming(out.err, "dup-check", "conflicting subparser: check")
    # Commands of the other plugins are still there.
    assert cli.main(["spool", "list", "--policy", str(EXAMPLE.parent / "none.toml")]) == 2


def test_a_plugin_raising_while_registering_is_named_and_its_half_command_removed(
        with_plugin, capsys):
    with_plugin(HalfThenRaises(), "half-plugin")
    assert cli.main(["rules", "--json", "--policy", str(EXAMPLE)]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)[0]["name"] == "callee"
    line = _one_line_naming(out.err, "half-plugin", "RuntimeError: settings file /etc/x.toml "
                                                    "unreadable")
    assert line == out.err.strip()  # one line, the plugin's newline made a space

    with pytest.raises(SystemExit) as exc:  # argparse: no such command
        cli.main(["half", "--policy", str(EXAMPLE)])
    assert exc.value.code == 2
    assert "invalid choice: 'half'" in capsys.readouterr().err
    help_text = cli.build_parser(cli.make_plugin_manager()).format_help()
    assert "half" not in help_text and "never usable" not in help_text
    capsys.readouterr()


def test_working_plugins_register_without_a_word(capsys):
    parser = cli.build_parser(cli.make_plugin_manager())
    assert capsys.readouterr().err == ""
    assert "spool" in parser.format_help()
