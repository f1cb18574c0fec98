"""The sysadmin's commands, run as they would type them."""

from __future__ import annotations

import json
import subprocess
import sys

from mailcall.core.cli import main
from mailcall.core.policy.load import load_policy
from mailcall.core.policy.pins import is_pin_hash, verify_pin

from .conftest import EXAMPLE


def run(capsys, *argv):
    code = main([*argv, "--policy", str(EXAMPLE)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_route_explain_busy_customer_facing_user_goes_to_backup(capsys):
    code, out, _ = run(capsys, "route", "--to", "201", "--from", "+33612345678",
                       "--at", "2026-12-01T10:05", "--state", "busy", "--explain")
    assert code == 0
    assert "  1. ring bernard: Dial(PJSIP/202,20)  -- backup of alice" in out
    assert "  2. ring @reception: Dial(PJSIP/203&PJSIP/204,20)" in out
    assert "  3. voicemail of alice, greeting: busy" in out
    assert "Why:\n  - 201 is alice (Alice Martin), profile sales" in out


def test_route_explain_absent_user_gets_absence_greeting(capsys):
    code, out, _ = run(capsys, "route", "--to", "205", "--at", "2026-12-02T10:05", "--explain")
    assert code == 0
    assert "voicemail of emma, greeting: absence" in out
    assert "emma is absent from 2026-12-01 00:00 until 2026-12-13 00:00, backup bernard" in out
    assert "1. ring bernard" in out


def test_route_json(capsys):
    code, out, _ = run(capsys, "route", "--to", "201", "--at", "2026-12-01T19:05", "--json")
    plan = json.loads(out)
    assert code == 0 and plan["callee"] == "alice"
    assert plan["steps"] == [{"mailbox": "alice", "greeting": "unavailable",
                              "why": "alice's voicemail, unavailable greeting",
                              "kind": "voicemail"}]


def test_route_bad_time_is_a_usage_error(capsys):
    try:
        main(["route", "--to", "201", "--at", "tomorrow", "--policy", str(EXAMPLE)])
    except SystemExit as exc:
        assert exc.code == 2
    assert "is not a date-time like 2026-12-01T19:05" in capsys.readouterr().err


def test_mail_explain(capsys):
    code, out, _ = run(capsys, "mail", "--to", "emma@stockinox.example", "--from",
                       "client@example.com", "--at", "2026-12-02T10:05", "--explain")
    assert code == 0
    assert "1. auto-reply to client@example.com" in out
    assert "no notification: emma is absent" in out


def test_users_json(capsys):
    code, out, _ = run(capsys, "users", "--json")
    users = {u["id"]: u for u in json.loads(out)}
    assert code == 0 and users["alice"]["extensions"] == ["201"]
    assert "pin" not in json.dumps(users).lower()  # secrets never printed


def test_init_writes_a_valid_commented_policy(tmp_path, capsys):
    target = tmp_path / "etc" / "policy.toml"
    assert main(["init", str(target)]) == 0
    assert target.read_text().startswith("# mailcall policy")
    assert load_policy(target).organisation.name == "Stock Inox"
    assert main(["init", str(target)]) == 64
    assert "already exists" in capsys.readouterr().err


def test_hash_pin_round_trip():
    out = subprocess.run([sys.executable, "-m", "mailcall.core.cli", "hash-pin"], input="2468\n",
                         capture_output=True, text=True, check=True).stdout.strip()
    assert verify_pin(out, "2468") and not verify_pin(out, "2469")
    bad = subprocess.run([sys.executable, "-m", "mailcall.core.cli", "hash-pin"], input="12\n",
                         capture_output=True, text=True)
    assert bad.returncode == 64 and "4 to 12 digits" in bad.stderr


def test_example_pin_is_2468():
    assert verify_pin(load_policy(EXAMPLE).users["alice"].pin_hash, "2468")


def test_no_command_prints_help(capsys):
    assert main([]) == 64
    assert "check" in capsys.readouterr().out


def test_malformed_pin_hashes_are_refused_never_raise():
    good = load_policy(EXAMPLE).users["alice"].pin_hash
    salt_digest = good.split("$", 4)[4]
    for bad in (f"scrypt$16383$8$1${salt_digest}",          # n not a power of two
                f"scrypt$1048576$8$1${salt_digest}",        # beyond scrypt's memory bound
                good[:-5],                                  # truncated copy-paste
                "scrypt$16384$8$1$AAAA$AAAA"):              # salt and digest too short
        assert not is_pin_hash(bad), bad
        assert verify_pin(bad, "2468") is False


def test_policy_option_after_a_plugin_sub_command(tmp_path, capsys):
    """`mailcall spool list --policy P` reads P, as `mailcall spool --policy P list` does."""
    assert main(["spool", "list", "--policy", str(tmp_path / "none.toml")]) == 2
    assert "none.toml: file not found" in capsys.readouterr().err
    assert main(["spool", "--policy", str(tmp_path / "none.toml"), "list"]) == 2


def test_rules_are_listed_in_running_order(capsys):
    assert main(["rules", "--json"]) == 0
    rules = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rules] == ["callee", "group-call", "absence", "opening-hours",
                                          "known-state", "own-phone", "mobile", "backups",
                                          "voicemail"]
    assert all(r["description"] for r in rules)


def test_plans_are_printed_by_their_own_module_not_the_command_line(example):
    """The formatters live in mailcall.core.plan_text; core/cli.py keeps no copy or alias."""
    from datetime import datetime

    import mailcall.core.cli as cli
    from mailcall.core.decisions.mailing import plan_mail
    from mailcall.core.decisions.plans import CallRequest, MailRequest
    from mailcall.core.decisions.routing import plan_call
    from mailcall.core.plan_text import format_call_plan, format_mail_plan

    at = example.local(datetime(2026, 12, 1, 10, 5))
    call = plan_call(example, CallRequest(callee="201", caller="", at=at, state="busy"))
    text = format_call_plan(example, call, explain=True)
    assert "  1. ring bernard: Dial(PJSIP/202,20)  -- backup of alice" in text
    assert "Why:\n  - 201 is alice (Alice Martin), profile sales" in text
    mail = plan_mail(example, MailRequest(recipient="emma@stockinox.example",
                                          sender="client@example.com",
                                          at=example.local(datetime(2026, 12, 2, 10, 5))))
    assert "1. auto-reply to client@example.com" in format_mail_plan(mail, explain=False)
    defined_here = [name for name, obj in vars(cli).items()
                    if getattr(obj, "__module__", None) == cli.__name__]
    assert not [name for name in defined_here if name.startswith("format_")], defined_here


class _PluginRingsAForgedEndpoint:
    """A third-party routing rule whose endpoint is not a plain number (a plugin bug)."""

    name = "forged"
    description = "rings a forged endpoint beside a good one"
    order = 50

    def apply(self, ctx):
        from mailcall.core.decisions.plans import Endpoint, Ring

        ctx.add(Ring((Endpoint("extension", "201&Local/666@evil"), Endpoint("extension", "202")),
                     20, "plugin", "the plugin's ring"))
        ctx.add(Ring((Endpoint("number", "+33\n1"),), 20, "plugin", "the plugin's second ring"))


def test_route_explain_with_an_unsafe_endpoint_prints_a_clear_line(capsys, monkeypatch):
    """One Dial argument (core/policy/telephony.dial_argument): --explain used to raise
    UnsafeEndpoint (a ValueError main does not catch) and print a traceback, while the
    AGI route handler skipped the endpoint and dialled the rest."""
    from mailcall.core import cli
    from mailcall.core.decisions.rules import default_rules

    monkeypatch.setattr(cli, "call_rules", lambda pm: [*default_rules(),
                                                       _PluginRingsAForgedEndpoint()])
    code, out, err = run(capsys, "route", "--to", "201", "--at", "2026-12-01T10:05",
                         "--explain")
    assert code == 0, err
    assert "  1. ring plugin: Dial(PJSIP/202,20)  -- the plugin's ring" in out
    assert ("     left out: refusing to dial '201&Local/666@evil': not a plain number"
            in out)
    assert "  2. ring plugin: nothing can be dialled, step skipped" in out
    assert "refusing to dial '+33\\n1'" in out  # shown escaped, on its one line
    assert "Traceback" not in err
