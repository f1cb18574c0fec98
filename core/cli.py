"""The `mailcall` command: what a sysadmin runs to check, explain and serve the policy.

Every command that prints a result also prints it as JSON with --json, so the
same answers can be scripted; every error names the file, key and line to fix
and exits non-zero, never with a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from mailcall.core.decisions.mailing import plan_mail
from mailcall.core.decisions.plans import CALLEE_STATES, CallRequest, MailRequest, Ring, Voicemail
from mailcall.core.decisions.routing import plan_call
from mailcall.core.errors import PolicyInvalid
from mailcall.core.host.collect import ContractBroken, call_rules
from mailcall.core.host.plugin_manager import (
    PluginLoadError,
    announce_decision,
    describe_plugins,
    each_plugin,
    make_plugin_manager,
)
from mailcall.core.plan_text import format_call_plan, format_mail_plan
from mailcall.core.policy.load import DEFAULT_PATH, load_policy
from mailcall.core.policy.model import Policy
from mailcall.core.policy.section_keys import agi_path_problem
from mailcall.core.text import display_text

EXIT_OK, EXIT_USAGE, EXIT_INVALID = 0, 64, 2


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def main(argv: Sequence[str] | None = None) -> int:
    disabled = tuple(n.strip() for n in os.environ.get("MAILCALL_DISABLE_PLUGINS", "").split(",")
                     if n.strip())
    try:
        pm = make_plugin_manager(blocked=disabled)
    except PluginLoadError as exc:
        print(f"mailcall: {exc} (to run without it: MAILCALL_DISABLE_PLUGINS=name)",
              file=sys.stderr)
        return 1
    parser = build_parser(pm)
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return EXIT_USAGE

    def policy_loader() -> Policy:
        return load_policy(args.policy, pm=pm)

    args.pm = pm
    try:
        return args.handler(args, policy_loader)
    except PolicyInvalid as exc:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "problems": [p.to_dict() for p in exc.problems]},
                             indent=2))
        else:
            print(exc.report(), file=sys.stderr)
        return EXIT_INVALID
    except CliError as exc:
        print(f"mailcall: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except ContractBroken as exc:  # a plugin's hook result, named with its plugin
        print(f"mailcall: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def build_parser(pm: Any) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--policy", type=Path,
                        default=Path(os.environ.get("MAILCALL_POLICY", DEFAULT_PATH)),
                        help="policy file (default: $MAILCALL_POLICY or %(default)s); "
                             "policy.d/*.toml beside it is merged in name order")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    parser = argparse.ArgumentParser(
        prog="mailcall",
        description="One routing policy for Asterisk calls, voicemail, fax and Dovecot mail.",
        epilog="Start with 'mailcall init policy.toml', then 'mailcall check --policy "
               "policy.toml'. Docs: README.md and docs/ in the source tree.")
    parser.add_argument("--version", action="version",
                        version=f"mailcall {_version()}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")

    p = sub.add_parser("check", parents=[common], help="validate the policy; exit 2 if invalid",
                       description="Validate the policy and report every problem with file, "
                                   "line, key and reason. Exit 0 if valid, 2 if not.")
    p.add_argument("path", nargs="?", type=Path, help="policy file (same as --policy)")
    p.set_defaults(handler=cmd_check)

    p = sub.add_parser("route", parents=[common], help="show where a call would go",
                       description="Show the plan the policy gives a call, step by step.")
    p.add_argument("--to", required=True, help="dialled extension or number, e.g. 201")
    p.add_argument("--from", dest="caller", default="", help="caller number")
    p.add_argument("--at", type=_moment, default=None,
                   help="time of the call, e.g. 2026-12-01T19:05 (organisation's time zone; "
                        "default: now)")
    p.add_argument("--state", choices=CALLEE_STATES, default="unknown",
                   help="callee state known before ringing (default: unknown)")
    p.add_argument("--explain", action="store_true", help="also print why, line by line, and "
                   "where each value came from (profile, policy file, the user's own choice)")
    p.add_argument("--store", default=None, help="user store file (default: "
                   "$MAILCALL_USER_STORE, else users/store.sqlite in the state directory)")
    p.set_defaults(handler=cmd_route)

    p = sub.add_parser("mail", parents=[common], help="show what the policy does with a mail",
                       description="Show the actions the policy takes for an incoming mail.")
    p.add_argument("--to", required=True, help="recipient address")
    p.add_argument("--from", dest="sender", default="", help="sender address")
    p.add_argument("--at", type=_moment, default=None, help="delivery time (default: now)")
    p.add_argument("--context", default="", help="Message-Context header, e.g. voice-message")
    p.add_argument("--auto-submitted", default="", help="Auto-Submitted header value")
    p.add_argument("--list-id", default="", help="List-Id header value")
    p.add_argument("--explain", action="store_true", help="also print why, line by line, and "
                   "where each value came from (profile, policy file, the user's own choice)")
    p.add_argument("--store", default=None, help="user store file (default: "
                   "$MAILCALL_USER_STORE, else users/store.sqlite in the state directory)")
    p.set_defaults(handler=cmd_mail)

    p = sub.add_parser("users", parents=[common], help="list users with profile and contacts")
    p.set_defaults(handler=cmd_users)

    p = sub.add_parser("plugins", parents=[common], help="list loaded plugins and versions")
    p.set_defaults(handler=cmd_plugins)

    p = sub.add_parser("rules", parents=[common], help="list the call routing rules in order",
                       description="The rules that build a call plan, in the order they run, "
                                   "from every plugin (built-in ones included).")
    p.set_defaults(handler=cmd_rules)

    p = sub.add_parser("init", help="write a commented example policy",
                       description="Write the commented example policy (a small company) to "
                                   "PATH, to edit and then check.")
    p.add_argument("path", type=Path, nargs="?", default=DEFAULT_PATH)
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(handler=cmd_init)

    p = sub.add_parser("hash-pin", help="hash a phone PIN for the policy's 'pin' key",
                       description="Read a PIN (4 to 12 digits) from standard input or a "
                                   "prompt and print the hash to paste as pin = \"...\".")
    p.set_defaults(handler=cmd_hash_pin)

    p = sub.add_parser("serve", parents=[common], help="run the FastAGI server, Sieve bridge "
                       "and spool worker", description="Run mailcall's services until SIGTERM. "
                       "SIGHUP reloads the policy (a broken policy is refused and the running one "
                       "kept).")
    p.add_argument("--agi-listen", default=None, help="HOST:PORT for FastAGI "
                   "(default: [server] agi_listen, 127.0.0.1:4573)")
    p.add_argument("--spool-dir", default=None, help="spool directory "
                   "(default: [server] spool_dir)")
    p.add_argument("--greetings-dir", default=None, help="greetings directory "
                   "(default: [server] greetings_dir)")
    p.add_argument("--sieve-socket", default=None, help="UNIX socket for Dovecot's Sieve "
                   "(default: [server] sieve_socket; none: not served)")
    p.add_argument("--log-level", default="INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    p.set_defaults(handler=cmd_serve)

    _register_plugin_commands(pm, sub)
    for action in sub.choices.values():
        if not any(a.dest == "policy" for a in action._actions):
            action.add_argument("--policy", type=Path,
                                default=Path(os.environ.get("MAILCALL_POLICY", DEFAULT_PATH)),
                                help="policy file (default: %(default)s)")
    return parser


def _register_plugin_commands(pm: Any, sub: argparse._SubParsersAction) -> None:
    """Each plugin's sub-commands, one plugin at a time, so one broken plugin costs only its own.

    A plugin whose registration fails (a command name already taken, any exception)
    is named on stderr with the fix and left out with whatever it had half-added;
    every other command, ``mailcall plugins`` included, still runs.
    """
    for name, register in each_plugin(pm, "mailcall_register_commands"):
        parsers, listed = dict(sub._name_parser_map), list(sub._choices_actions)
        try:
            register(subparsers=sub)
        except Exception as exc:  # argparse.ArgumentError included: "conflicting subparser"
            sub._name_parser_map.clear()  # sub.choices is this very dict
            sub._name_parser_map.update(parsers)
            sub._choices_actions[:] = listed
            what = display_text(f"{type(exc).__name__}: {exc}", 300)
            print(f"mailcall: plugin {name!r} failed in mailcall_register_commands ({what}); "
                  f"its commands are left out, the others work. Fix that plugin or disable it "
                  f"(MAILCALL_DISABLE_PLUGINS={name})", file=sys.stderr)


def _version() -> str:
    try:
        return metadata.version("mailcall")
    except metadata.PackageNotFoundError:
        return "unknown"


def _moment(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date-time like 2026-12-01T19:05") from None


def _emit(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False) if args.json else text())


def cmd_check(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    if args.path is not None:
        args.policy = args.path
    policy = load_policy(args.policy, pm=args.pm)
    summary = {"ok": True, "files": list(policy.sources), "users": len(policy.users),
               "groups": len(policy.groups), "profiles": len(policy.profiles)}
    _emit(args, summary, lambda: (
        f"policy OK: {', '.join(policy.sources)}: {len(policy.users)} users, "
        f"{len(policy.groups)} groups, {len(policy.profiles)} profiles"))
    return EXIT_OK


def _rules(args: argparse.Namespace) -> list:
    return call_rules(args.pm)


def _with_store(args: argparse.Namespace, policy: Policy) -> tuple[Policy, list[str], Any]:
    """The policy refined by the user store, as `mailcall serve` decides (docs/user-settings.md)."""
    from mailcall.core.policy.load import offers
    from mailcall.userstore.overlay import store_view
    from mailcall.userstore.paths import store_path

    media = offers(args.pm).media
    view, problems = store_view(policy, store_path(policy.server, args.store), media=media)
    return view, problems, media


def _store_problems(problems: list[str]) -> None:
    for problem in problems:
        print(f"mailcall: user store not applied, the plan follows the policy file alone: "
              f"{problem}", file=sys.stderr)


def cmd_route(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    from mailcall.userstore.explain import sources

    policy = loader()
    view, problems, media = _with_store(args, policy)
    at = policy.local(args.at or datetime.now(UTC))
    request = CallRequest(callee=args.to, caller=args.caller, at=at, state=args.state)
    plan = plan_call(view, request, _rules(args) or None)
    announce_decision(args.pm, "call", request, plan)
    data = plan.to_dict()
    lines: list[str] = []
    if args.explain:
        others = [s.who for s in plan.steps if isinstance(s, Ring)] + [
            s.mailbox for s in plan.steps if isinstance(s, Voicemail)]
        lines, data["sources"] = sources(policy, view, [plan.callee or ""], others,
                                         media=media, problems=problems)
    else:
        _store_problems(problems)
    _emit(args, data, lambda: "\n".join(
        [format_call_plan(policy, plan, explain=args.explain), *lines]))
    return EXIT_OK


def cmd_mail(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    from mailcall.userstore.explain import sources

    policy = loader()
    view, problems, media = _with_store(args, policy)
    request = MailRequest(recipient=args.to, sender=args.sender,
                          at=policy.local(args.at or datetime.now(UTC)), context=args.context,
                          auto_submitted=args.auto_submitted, list_id=args.list_id)
    plan = plan_mail(view, request)
    announce_decision(args.pm, "mail", request, plan)
    data = plan.to_dict()
    lines: list[str] = []
    if args.explain:
        lines, data["sources"] = sources(policy, view, [plan.user or ""], media=media,
                                         problems=problems)
    else:
        _store_problems(problems)
    _emit(args, data, lambda: "\n".join([format_mail_plan(plan, explain=args.explain), *lines]))
    return EXIT_OK


def cmd_users(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    policy = loader()
    now = datetime.now(UTC)
    rows = []
    for u in policy.users.values():
        absence = policy.absence_at(u.id, now)
        rows.append({"id": u.id, "name": u.name, "profile": u.profile, "email": u.email,
                     "extensions": list(u.extensions), "mobile": u.mobile,
                     "preferred_medium": u.preferred_medium,
                     "absent_until": absence.until.isoformat() if absence else None})

    def table() -> str:
        out = [f"{'ID':<12} {'NAME':<22} {'PROFILE':<12} {'EXT':<8} {'EMAIL':<30} ABSENT UNTIL"]
        for r in rows:
            out.append(f"{r['id']:<12} {r['name']:<22} {r['profile']:<12} "
                       f"{','.join(r['extensions']):<8} {r['email']:<30} "
                       f"{r['absent_until'] or '-'}")
        return "\n".join(out)

    _emit(args, rows, table)
    return EXIT_OK


def cmd_plugins(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    plugins = describe_plugins(args.pm)
    _emit(args, plugins, lambda: "\n".join(
        f"{p['name']:<10} {p['module']:<28} {p['version'] or '-':<8} {', '.join(p['hooks'])}"
        for p in plugins))
    return EXIT_OK


def cmd_rules(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    rules = [{"order": r.order, "name": r.name, "description": r.description,
              "module": type(r).__module__} for r in _rules(args)]
    _emit(args, rules, lambda: "\n".join(
        f"{r['order']:>5}  {r['name']:<15} {r['description']}" for r in rules))
    return EXIT_OK


def cmd_init(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    path: Path = args.path
    if path.exists() and not args.force:
        raise CliError(f"{path} already exists; use --force to overwrite it")
    text = resources.files("mailcall.core").joinpath("data/small-company.toml").read_text("utf-8")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {path}: {exc.strerror}") from None
    print(f"wrote {path}; edit it, then run: mailcall check --policy {path}")
    return EXIT_OK


def cmd_hash_pin(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    from getpass import getpass

    from mailcall.core.policy.pins import hash_pin

    pin = getpass("PIN: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
    try:
        print(hash_pin(pin))
    except ValueError as exc:
        raise CliError(str(exc)) from None
    return EXIT_OK


def cmd_serve(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    from mailcall.core.host.serve import serve

    policy = loader()
    for option, value in (("--spool-dir", args.spool_dir),
                          ("--greetings-dir", args.greetings_dir)):
        if value is not None and (problem := agi_path_problem(value)):
            raise CliError(f"{option} {value!r} {problem}")
    overrides = {"agi_listen": args.agi_listen, "spool_dir": args.spool_dir,
                 "greetings_dir": args.greetings_dir, "sieve_socket": args.sieve_socket}
    return serve(policy, args.pm, policy_path=args.policy, overrides=overrides,
                 log_level=args.log_level)


if __name__ == "__main__":
    sys.exit(main())
