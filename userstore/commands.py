"""``mailcall user ...`` and ``mailcall absence ...``: IT's view of the user store.

These commands write the store directly (not through a running server), so
they work when ``mailcall serve`` is down. Each change is checked against the
policy exactly as a user's own change would be: the policy file is the ceiling,
and IT widens it by editing the policy, not here.

Exit status: 0 done; 2 refused (the message says which field and why; nothing
was saved); 64 wrong usage; 74 the store cannot be read or written (damaged,
permissions); 75 the store is locked by another process (try again).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mailcall.core.policy.model import Policy
from mailcall.core.policy.pins import hash_pin
from mailcall.core.text import display_text
from mailcall.userstore.effective import Effective
from mailcall.userstore.errors import RefinementRefused, StoreError, StoreLocked
from mailcall.userstore.fields import FIELDS, field_names, parse_text
from mailcall.userstore.paths import ENV, store_path
from mailcall.userstore.records import AuditEntry, Refinements
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_IOERR, EXIT_TEMPFAIL = 0, 2, 64, 74, 75


def register(subparsers: argparse._SubParsersAction) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--policy", type=Path, default=argparse.SUPPRESS,
                        help="policy file (default: $MAILCALL_POLICY or "
                             "/etc/mailcall/policy.toml)")
    common.add_argument("--store", default=None,
                        help=f"user store file (default: ${ENV}, else users/store.sqlite "
                             "beside the policy's [server] greetings_dir)")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    writer = argparse.ArgumentParser(add_help=False)
    writer.add_argument("--actor", default=None,
                        help="who makes the change, for the audit log (default: it:<login>)")

    user = subparsers.add_parser(
        "user", help="show or change a user's own settings (within their profile)",
        description="A user's refinements of their profile, kept in the user store. The "
                    "policy file stays the ceiling: what the profile does not grant is "
                    f"refused. Settings: {field_names()}.")
    sub = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    p = sub.add_parser("show", parents=[common], help="effective settings and their sources")
    p.add_argument("user", metavar="USER")
    p.set_defaults(handler=cmd_show)
    p = sub.add_parser("set", parents=[common, writer], help="set settings: FIELD=VALUE ...",
                       description="Set one or more settings at once (all or none are saved). "
                                   "Lists are comma-separated (sms,email; none for empty); "
                                   "switches are on/off. " + "; ".join(
                                       f"{f.name}: {f.help}" for f in FIELDS.values()))
    p.add_argument("user", metavar="USER")
    p.add_argument("assignments", nargs="*", metavar="FIELD=VALUE")
    p.add_argument("--pin", action="store_true",
                   help="set the phone PIN, read from standard input or a prompt")
    p.set_defaults(handler=cmd_set)
    p = sub.add_parser("clear", parents=[common, writer],
                       help="forget settings (all, and the user's own absences, if none named)")
    p.add_argument("user", metavar="USER")
    p.add_argument("fields", nargs="*", metavar="FIELD")
    p.set_defaults(handler=cmd_clear)
    p = sub.add_parser("history", parents=[common], help="the audit log (of USER, or everyone)")
    p.add_argument("user", metavar="USER", nargs="?")
    p.add_argument("--limit", type=int, default=50, help="entries to show (default 50)")
    p.set_defaults(handler=cmd_history)

    absence = subparsers.add_parser(
        "absence", help="set or clear a user's own absence (the policy's absences stay)",
        description="Absences kept in the user store, beside those written in the policy "
                    "file (which the store never removes, and which win where both apply).")
    sub = absence.add_subparsers(dest="absence_command", required=True, metavar="ACTION")
    p = sub.add_parser("set", parents=[common, writer], help="add an absence")
    p.add_argument("user", metavar="USER")
    p.add_argument("--until", required=True,
                   help="end: 2026-12-12 (back on the 12th, 00:00) or 2026-12-12T18:00, "
                        "organisation's time zone unless an offset is given")
    p.add_argument("--from", dest="start", default=None, help="start (default: now)")
    p.add_argument("--backup", default=None, help="user id or @group who takes the calls")
    p.add_argument("--message", default=None, help="absence message (greeting, auto-reply)")
    p.set_defaults(handler=cmd_absence_set)
    p = sub.add_parser("clear", parents=[common, writer],
                       help="remove the user's own absences (all, or --id N)")
    p.add_argument("user", metavar="USER")
    p.add_argument("--id", dest="ids", type=int, action="append",
                   help="the absence to remove (see 'mailcall user show'); repeatable")
    p.set_defaults(handler=cmd_absence_clear)


# -- plumbing ----------------------------------------------------------------
def _run(args: argparse.Namespace, loader: Callable[[], Policy],
         action: Callable[[Policy, UserStore], Any]) -> int:
    policy = loader()
    path = store_path(policy.server, args.store)
    try:
        backend = SqliteStore(path)
    except StoreError as exc:
        return _store_failed(args, exc)
    try:
        return action(policy, UserStore(backend))
    except RefinementRefused as exc:
        if args.json:
            print(json.dumps({"ok": False, "user": exc.user, "problems": [
                {"field": p.field, "message": p.message} for p in exc.problems]}, indent=2,
                ensure_ascii=False))
        else:
            print(f"mailcall: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except StoreError as exc:
        return _store_failed(args, exc)
    finally:
        backend.close()


def _store_failed(args: argparse.Namespace, exc: StoreError) -> int:
    if args.json:
        print(json.dumps({"ok": False, "store": exc.path, "error": type(exc).__name__,
                          "message": str(exc)}, indent=2, ensure_ascii=False))
    else:
        print(f"mailcall: {exc}", file=sys.stderr)
    return EXIT_TEMPFAIL if isinstance(exc, StoreLocked) else EXIT_IOERR


def _usage(args: argparse.Namespace, message: str) -> int:
    if args.json:
        print(json.dumps({"ok": False, "error": "usage", "message": message}, indent=2))
    else:
        print(f"mailcall: {message}", file=sys.stderr)
    return EXIT_USAGE


def _actor(args: argparse.Namespace) -> str:
    if args.actor:
        return args.actor
    login = os.environ.get("SUDO_USER") or getpass.getuser()
    return f"it:{login}"


# -- user --------------------------------------------------------------------
def cmd_show(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    def show(policy: Policy, store: UserStore) -> int:
        effective = store.effective(policy, args.user)
        _print(args, {"ok": True, **effective.to_dict()}, lambda: format_effective(
            policy, effective))
        return EXIT_OK

    return _run(args, loader, show)


def format_effective(policy: Policy, effective: Effective) -> str:
    u = effective.user
    lines = [f"{u.id} ({display_text(u.name, 60)}), profile {u.profile}", "", "Settings:"]
    width = max(len(k) for k in effective.values)
    for name, item in effective.values.items():
        value = item.value
        shown = ", ".join(value) if isinstance(value, list) else (
            "on" if value is True else "off" if value is False else "-" if value is None
            else str(value))
        lines.append(f"  {name:<{width}}  {display_text(shown, 80)}  <- {item.source}")
        if item.note:
            lines.append(f"  {'':<{width}}  ! {display_text(item.note, 300)}")
    lines += ["", "Absences:"]
    if not effective.absences:
        lines.append("  (none)")
    for item in effective.absences:
        a = item.absence
        ident = f"#{item.id} " if item.id is not None else ""
        lines.append(f"  {ident}{policy.local(a.start):%Y-%m-%d %H:%M} to "
                     f"{policy.local(a.until):%Y-%m-%d %H:%M}, backup {a.backup or '-'}"
                     f"  <- {item.source}")
        if a.message:
            lines.append(f"      message: {display_text(a.message, 200)}")
        if item.note:
            lines.append(f"      ! {display_text(item.note, 300)}")
    return "\n".join(lines)


def cmd_set(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    values: dict[str, Any] = {}
    problems = []
    for item in args.assignments:
        name, sep, text = item.partition("=")
        if not sep:
            problems.append(f"{item!r}: write FIELD=VALUE, e.g. notify.hours=office")
        elif name not in FIELDS:
            problems.append(f"{name}: is not a setting users may change; they are: "
                            f"{field_names()}")
        else:
            try:
                values[name] = parse_text(name, text)
            except ValueError as exc:
                problems.append(f"{name}: {exc}")
    if args.pin:
        pin = getpass.getpass("PIN: ") if sys.stdin.isatty() else sys.stdin.readline().strip()
        try:
            values["pin"] = hash_pin(pin)
        except ValueError as exc:
            problems.append(f"pin: {exc}")
    if problems:
        return _usage(args, f"nothing was saved for {args.user}: " + "; ".join(problems))
    if not values:
        return _usage(args, f"give at least one FIELD=VALUE (or --pin); settings: "
                            f"{field_names()}")

    def change(policy: Policy, store: UserStore) -> int:
        refined = store.set(policy, args.user, values, actor=_actor(args), origin="cli")
        return _done(args, policy, store, refined, f"saved for {args.user}: " + ", ".join(
            sorted(values)))

    return _run(args, loader, change)


def cmd_clear(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    def change(policy: Policy, store: UserStore) -> int:
        refined = store.clear(policy, args.user, args.fields or None, actor=_actor(args),
                              origin="cli")
        what = ", ".join(args.fields) if args.fields else "every setting and own absence"
        return _done(args, policy, store, refined, f"cleared for {args.user}: {what} "
                     "(the policy file's values apply)")

    return _run(args, loader, change)


def cmd_history(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    def show(policy: Policy, store: UserStore) -> int:
        entries = store.audit(args.user, args.limit)
        _print(args, {"ok": True, "entries": [e.to_dict() for e in entries]},
               lambda: format_history(policy, entries))
        return EXIT_OK

    return _run(args, loader, show)


def format_history(policy: Policy, entries: list[AuditEntry]) -> str:
    if not entries:
        return "(no changes recorded)"
    return "\n".join(
        f"#{e.seq} {policy.local(e.stamp.at):%Y-%m-%d %H:%M:%S} {e.stamp.origin:<5} "
        f"{display_text(e.stamp.actor, 40)}: {e.user} {e.field}: "
        f"{display_text(e.old or '-', 120)} -> {display_text(e.new or '-', 120)}"
        for e in entries)


# -- absence -----------------------------------------------------------------
def cmd_absence_set(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    def change(policy: Policy, store: UserStore) -> int:
        refined = store.set_absence(policy, args.user, until=args.until, start=args.start,
                                    backup=args.backup, message=args.message,
                                    actor=_actor(args), origin="cli")
        return _done(args, policy, store, refined, f"absence saved for {args.user}")

    return _run(args, loader, change)


def cmd_absence_clear(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    def change(policy: Policy, store: UserStore) -> int:
        refined = store.clear_absences(policy, args.user, args.ids, actor=_actor(args),
                                       origin="cli")
        what = ", ".join(f"#{i}" for i in args.ids) if args.ids else "every own absence"
        return _done(args, policy, store, refined, f"cleared for {args.user}: {what} "
                     "(absences in the policy file stay)")

    return _run(args, loader, change)


def _done(args: argparse.Namespace, policy: Policy, store: UserStore, refined: Refinements,
          headline: str) -> int:
    effective = store.effective(policy, refined.user)
    _print(args, {"ok": True, **effective.to_dict()},
           lambda: f"{headline}\n\n{format_effective(policy, effective)}")
    return EXIT_OK


def _print(args: argparse.Namespace, data: Any, text: Callable[[], str]) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str) if args.json else text())
