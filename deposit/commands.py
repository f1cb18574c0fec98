"""``mailcall spool list|retry|purge``: what the sysadmin sees of the spool.

These commands touch only files, never the running server, so they work when
``mailcall serve`` is down. Records moved back to ``incoming`` by ``retry``
are picked up by a running worker within its poll interval (30 s).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from .spool import STATES, Spool, now_utc, valid_id


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "spool",
        help="list, retry or purge voicemail and fax deposits waiting for delivery",
        description="Inspect the deposit spool (server.spool_dir of the policy, or --spool-dir).",
    )
    parser.add_argument(
        "--spool-dir", help="spool directory (default: the policy's server.spool_dir)"
    )
    sub = parser.add_subparsers(dest="spool_command", required=True)
    # `mailcall spool list --policy P` as well as `mailcall spool --policy P list`:
    # SUPPRESS keeps the sub-command from resetting a --policy given before it.
    policy = argparse.ArgumentParser(add_help=False)
    policy.add_argument("--policy", type=Path, default=argparse.SUPPRESS,
                        help="policy file (default: $MAILCALL_POLICY or "
                             "/etc/mailcall/policy.toml)")

    p_list = sub.add_parser("list", parents=[policy],
                            help="one line per deposit: id, state, attempts, last error")
    p_list.add_argument("--state", choices=STATES, action="append", help="only these states")
    p_list.add_argument("--json", action="store_true", help="machine-readable output")
    p_list.set_defaults(handler=cmd_list)

    p_retry = sub.add_parser("retry", parents=[policy],
                             help="try deferred or parked deposits again, now")
    p_retry.add_argument("ids", nargs="*", help="deposit ids (from 'mailcall spool list')")
    p_retry.add_argument("--all-parked", action="store_true", help="every parked deposit")
    p_retry.add_argument("--all-deferred", action="store_true", help="every deferred deposit")
    p_retry.set_defaults(handler=cmd_retry)

    p_purge = sub.add_parser("purge", parents=[policy],
                             help="delete delivered records, or chosen parked deposits")
    p_purge.add_argument(
        "--delivered-older-than",
        type=float,
        default=7.0,
        metavar="DAYS",
        help="delete delivered records older than DAYS days (default 7)",
    )
    p_purge.add_argument(
        "--parked",
        nargs="+",
        default=[],
        metavar="ID",
        help="also delete these parked deposits (their message is lost: retry first if unsure)",
    )
    p_purge.set_defaults(handler=cmd_purge)


def _spool(args: argparse.Namespace, policy_loader: Callable[[], Any]) -> Spool:
    root = args.spool_dir or policy_loader().server.spool_dir
    return Spool(Path(root))


def cmd_list(args: argparse.Namespace, policy_loader: Callable[[], Any]) -> int:
    spool = _spool(args, policy_loader)
    if not spool.root.is_dir():
        print(
            f"mailcall spool: {spool.root} does not exist (nothing was ever deposited there)",
            file=sys.stderr,
        )
        return 1
    states = tuple(args.state) if args.state else STATES
    rows = list(spool.records(states))
    if args.json:
        json.dump([r.to_json() for r in rows], sys.stdout, indent=1)
        print()
        return 0
    for r in rows:
        when = r.next_attempt if r.state == "deferred" else r.accepted_at
        print(
            f"{r.id}  {r.state:<9}  {r.deposit.mailbox:<12}  attempts={r.attempts}"
            f"  {'next=' if r.state == 'deferred' else 'accepted='}"
            f"{when.isoformat() if when else None}"
            + (f"  error: {r.last_error}" if r.last_error else "")
        )
    print(f"{len(rows)} deposit(s)", file=sys.stderr)
    return 0


def cmd_retry(args: argparse.Namespace, policy_loader: Callable[[], Any]) -> int:
    spool = _spool(args, policy_loader)
    ids = list(args.ids)
    if args.all_parked:
        ids += spool.ids("parked")
    if args.all_deferred:
        ids += spool.ids("deferred")
    if not ids:
        print(
            "mailcall spool retry: name deposit ids, or --all-parked / --all-deferred",
            file=sys.stderr,
        )
        return 2
    status = 0
    for sid in dict.fromkeys(ids):
        record = spool.load(sid) if valid_id(sid) else None
        if record is None:
            print(f"{sid}: no such deposit in {spool.root}", file=sys.stderr)
            status = 1
            continue
        if record.state == "delivered":
            print(f"{sid}: already delivered, not sent again", file=sys.stderr)
            continue
        # A fresh give-up period.
        spool.save(dataclasses.replace(record, next_attempt=None, accepted_at=now_utc()),
                   "incoming")
        print(f"{sid}: queued for delivery")
    return status


def cmd_purge(args: argparse.Namespace, policy_loader: Callable[[], Any]) -> int:
    spool = _spool(args, policy_loader)
    cutoff = now_utc() - timedelta(days=args.delivered_older_than)
    removed = 0
    for record in spool.records(("delivered",)):
        stamp = record.results[-1].at if record.results else record.accepted_at
        if stamp < cutoff:
            spool.remove(record.id)
            removed += 1
    status = 0
    for sid in args.parked:
        record = spool.load(sid) if valid_id(sid) else None
        if record is None or record.state != "parked":
            print(f"{sid}: not a parked deposit, left alone", file=sys.stderr)
            status = 1
            continue
        spool.remove(sid)
        removed += 1
    print(f"{removed} deposit(s) removed from {spool.root}")
    return status
