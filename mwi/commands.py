"""``mailcall mwi status [USER]`` and ``mailcall mwi sync``, each with ``--json``.

Both run in their own process, beside (or without) ``mailcall serve``:

* ``status`` reads each user's voice folder now (what mailcall believes: the
  server computes the same counts the same way) and asks Asterisk what it
  holds (``MWIGet``), and shows where they differ;
* ``sync`` reads every folder and sends every lamp to Asterisk now — the
  reconcile the server runs at start and after Asterisk restarts. A mailbox
  that cannot be read is not sent (its lamp keeps what Asterisk has).

Exit status: 0 when everything was read (and, for sync, published), 1 when
some mailbox or Asterisk could not be reached, 64 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from mailcall.ami.client import AmiClient, AmiError
from mailcall.core.policy.load import DEFAULT_PATH
from mailcall.deposit.seal import existing_deposit_key

from .config import MwiConfigError, MwiSettings, config_path, load
from .counts import CountError, Counts
from .imap import ImapCounter
from .service import Watched, watched_users


class CommandError(Exception):
    pass


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("mwi", help="message-waiting lamps: what mailcall and Asterisk hold",
                              description="The message-waiting lamp of each user (docs/mwi.md).")
    sub = p.add_subparsers(title="mwi commands", metavar="COMMAND")
    s = sub.add_parser("status", help="counts read from IMAP beside what Asterisk holds",
                       description="Read USER's (or every user's) voice folder and ask "
                                   "Asterisk (MWIGet) what it holds.")
    s.add_argument("user", nargs="?", help="user id (default: every user with voicemail)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    _policy_option(s)
    s.set_defaults(handler=cmd_status)
    y = sub.add_parser("sync", help="recount every voice folder and publish every lamp now",
                       description="Full reconcile: read every voice folder, send every lamp "
                                   "to Asterisk (MWIUpdate).")
    y.add_argument("--json", action="store_true", help="print the result as JSON")
    _policy_option(y)
    y.set_defaults(handler=cmd_sync)
    p.set_defaults(handler=lambda args, loader: (p.print_help(), 64)[1])


def _policy_option(parser: argparse.ArgumentParser) -> None:
    # `mailcall` adds --policy to its own sub-commands, not to these nested ones.
    parser.add_argument("--policy", type=Path,
                        default=Path(os.environ.get("MAILCALL_POLICY", DEFAULT_PATH)),
                        help="policy file (default: $MAILCALL_POLICY or %(default)s); "
                             "mwi.toml is read beside it")


def _setup(args: argparse.Namespace, loader: Callable[[], Any]
           ) -> tuple[Any, MwiSettings, dict[str, Watched]]:
    policy = loader()
    path = config_path(args.policy)
    if path is None:
        raise CommandError(f"the lamp is not configured: write mwi.toml beside {args.policy} "
                           f"or set MAILCALL_MWI_CONFIG (docs/mwi.md)")
    settings = load(path, voice_folder=policy.mail.voice_folder)
    watched = watched_users(policy, settings)
    if getattr(args, "user", None):
        if args.user not in watched:
            known = "" if args.user not in policy.users else " (its voicemail is disabled)"
            raise CommandError(f"{args.user!r} is no watched user{known}")
        watched = {args.user: watched[args.user]}
    return policy, settings, watched


def _read_all(settings: MwiSettings, watched: dict[str, Watched],
              spool_dir: str) -> dict[str, Counts | CountError]:
    counter = ImapCounter(settings.imap, key=lambda: existing_deposit_key(spool_dir))

    def one(w: Watched) -> Counts | CountError:
        try:
            return counter.count(w.login, w.recipient)
        except CountError as exc:
            return exc

    with ThreadPoolExecutor(settings.imap.max_connections) as pool:
        return dict(zip(watched, pool.map(one, watched.values()), strict=True))


def _client(settings: MwiSettings) -> AmiClient:
    a = settings.ami
    return AmiClient(a.host, a.port, a.username, a.secret_file, action_prefix="mailcall-cli",
                     backoff_min=0.2, backoff_max=1.0)


async def _ami_get(settings: MwiSettings, watched: dict[str, Watched]
                   ) -> tuple[dict[str, Counts], str | None]:
    client = _client(settings)
    await client.start()
    try:
        if not await client.wait_connected(5):
            return {}, f"cannot log in to Asterisk AMI at {client.where} (see the log above)"
        if len(watched) == 1:
            pattern = next(iter(watched.values())).mailbox
        else:
            pattern = "/.*/"
        reply = await client.action("MWIGet", {"Mailbox": pattern}, timeout=30)
        if not reply.ok:
            return {}, f"Asterisk refused MWIGet: {reply.text}"
        held = {}
        for m in reply.events:
            if m.get("Event") == "MWIGet":
                try:
                    held[m.get("Mailbox") or ""] = Counts(int(m.get("NewMessages") or 0),
                                                          int(m.get("OldMessages") or 0))
                except ValueError:
                    continue
        return held, None
    except AmiError as exc:
        return {}, str(exc)
    finally:
        await client.stop()


def cmd_status(args: argparse.Namespace, loader: Callable[[], Any]) -> int:
    try:
        policy, settings, watched = _setup(args, loader)
    except (CommandError, MwiConfigError) as exc:
        return _usage(exc)
    read = _read_all(settings, watched, policy.server.spool_dir)
    held, ami_problem = asyncio.run(_ami_get(settings, watched))
    rows = []
    for uid, w in watched.items():
        got = read[uid]
        ast = held.get(w.mailbox)
        rows.append({
            "user": uid, "mailbox": w.mailbox, "login": w.login,
            "imap": got.to_dict() if isinstance(got, Counts) else None,
            "imap_error": None if isinstance(got, Counts) else str(got),
            "asterisk": ast.to_dict() if ast else None,
            "in_sync": isinstance(got, Counts) and ast == got,
        })
    if args.json:
        print(json.dumps({"users": rows, "asterisk_error": ami_problem}, indent=2))
    else:
        print(f"{'USER':<14} {'MAILBOX':<26} {'IMAP NEW/OLD':<13} {'ASTERISK':<10} STATE")
        for r in rows:
            imap = f"{r['imap']['new']}/{r['imap']['old']}" if r["imap"] else "unreadable"
            ast = f"{r['asterisk']['new']}/{r['asterisk']['old']}" if r["asterisk"] else "-"
            state = "ok" if r["in_sync"] else ("differs" if r["imap"] else r["imap_error"])
            print(f"{r['user']:<14} {r['mailbox']:<26} {imap:<13} {ast:<10} {state}")
        if ami_problem:
            print(f"Asterisk: {ami_problem}")
    return 0 if ami_problem is None and all(r["imap"] for r in rows) else 1


async def _publish(settings: MwiSettings, watched: dict[str, Watched],
                   read: dict[str, Counts | CountError]) -> tuple[int, str | None]:
    client = _client(settings)
    await client.start()
    sent = 0
    try:
        if not await client.wait_connected(5):
            return 0, f"cannot log in to Asterisk AMI at {client.where} (see the log above)"
        for uid, w in watched.items():
            got = read[uid]
            if not isinstance(got, Counts):
                continue
            reply = await client.action("MWIUpdate", {
                "Mailbox": w.mailbox, "NewMessages": got.new, "OldMessages": got.old})
            if not reply.ok:
                return sent, f"Asterisk refused MWIUpdate for {w.mailbox}: {reply.text}"
            sent += 1
        return sent, None
    except AmiError as exc:
        return sent, str(exc)
    finally:
        await client.stop()


def cmd_sync(args: argparse.Namespace, loader: Callable[[], Any]) -> int:
    try:
        policy, settings, watched = _setup(args, loader)
    except (CommandError, MwiConfigError) as exc:
        return _usage(exc)
    read = _read_all(settings, watched, policy.server.spool_dir)
    sent, problem = asyncio.run(_publish(settings, watched, read))
    unreadable = {u: str(r) for u, r in read.items() if not isinstance(r, Counts)}
    if args.json:
        print(json.dumps({"mailboxes": len(watched), "published": sent,
                          "unreadable": unreadable, "asterisk_error": problem}, indent=2))
    else:
        print(f"{sent} of {len(watched)} lamps published")
        for uid, why in unreadable.items():
            print(f"  {uid}: not published, {why}")
        if problem:
            print(f"Asterisk: {problem}")
    return 0 if problem is None and not unreadable else 1


def _usage(exc: Exception) -> int:
    import sys

    print(f"mailcall mwi: {exc}", file=sys.stderr)
    return 64
