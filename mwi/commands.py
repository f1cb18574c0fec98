"""``mailcall mwi status [USER]`` and ``mailcall mwi sync``, each with ``--json``.

When ``mailcall serve`` runs, both ask its lamp service, over its control
socket (:mod:`mailcall.mwi.control`), so that there is only one writer of lamps:

* ``status`` shows what the service believes (counts read, counts Asterisk was
  told, why a mailbox could not be read) beside what Asterisk holds now
  (``MWIGet``, asked by this command), and where they differ;
* ``sync`` makes the service run a full reconcile now and send every lamp
  again — what it does at start and after Asterisk restarts — and waits for it.

When no service answers, the commands read the folders (and, for sync,
publish) by themselves, and say so. A mailbox that cannot be read is never
sent: its lamp keeps what Asterisk has.

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

from . import control
from .config import MwiConfigError, MwiSettings, config_path, load
from .counts import CountError, Counts
from .imap import ImapCounter
from .watched import Watched, watched_users


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
    parser.add_argument("--spool-dir", default=None,
                        help="the spool directory mailcall serve was started with, if its "
                             "--spool-dir overrode [server] spool_dir (the deposit key and "
                             "the default control socket are there)")


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


def _spool(args: argparse.Namespace, policy: Any) -> str:
    return args.spool_dir or policy.server.spool_dir


def _ask(args: argparse.Namespace, settings: MwiSettings, policy: Any,
         request: control.Request, timeout: float) -> dict[str, Any] | None:
    """The running service's answer, or None when ``mailcall serve`` does not run."""
    path = control.socket_path(settings.lamp.control_socket, _spool(args, policy))
    return asyncio.run(control.ask(path, request, timeout))


def _not_running(args: argparse.Namespace, settings: MwiSettings, policy: Any) -> str:
    path = control.socket_path(settings.lamp.control_socket, _spool(args, policy))
    return (f"mailcall serve does not answer on {path} (if it runs with --spool-dir, give "
            f"the same here): counted by this command")


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
        only = tuple(watched) if args.user else None
        belief = _ask(args, settings, policy, control.Request("status", only), 30)
    except (CommandError, MwiConfigError) as exc:
        return _usage(exc)
    except control.ControlError as exc:
        return _failed(exc)
    held, ami_problem = asyncio.run(_ami_get(settings, watched))
    if belief is not None:
        source = "service"
        believed = {r["user"]: r for r in belief["users"] if r.get("watched")}
    else:
        source = "this command"
        believed = {}
        for uid, got in _read_all(settings, watched, _spool(args, policy)).items():
            believed[uid] = {"known": got.to_dict() if isinstance(got, Counts) else None,
                             "published": None,
                             "error": None if isinstance(got, Counts) else str(got)}
    rows = []
    for uid, w in watched.items():
        b = believed.get(uid, {"known": None, "published": None,
                               "error": "the running service does not watch this user "
                                        "(policy reloaded since?)"})
        ast = held.get(w.mailbox)
        known = b["known"]
        rows.append({
            "user": uid, "mailbox": w.mailbox, "login": w.login,
            "mailcall": known, "published": b.get("published"), "error": b.get("error"),
            "asterisk": ast.to_dict() if ast else None,
            "in_sync": known is not None and ast is not None and ast.to_dict() == known,
        })
    if args.json:
        print(json.dumps({"source": source, "users": rows, "asterisk_error": ami_problem,
                          "service": belief.get("service") if belief else None}, indent=2))
    else:
        if belief is None:
            print(_not_running(args, settings, policy))
        print(f"{'USER':<14} {'MAILBOX':<26} {'MAILCALL':<9} {'ASTERISK':<9} STATE")
        for r in rows:
            mine = f"{r['mailcall']['new']}/{r['mailcall']['old']}" if r["mailcall"] else "-"
            ast = f"{r['asterisk']['new']}/{r['asterisk']['old']}" if r["asterisk"] else "-"
            if r["in_sync"]:
                state = "ok"
            elif r["error"]:
                state = f"unreadable: {r['error']}" if r["mailcall"] is None else (
                    f"last read kept; now unreadable: {r['error']}")
            elif r["mailcall"] is None:
                state = "not read yet"
            else:
                state = "differs"
            print(f"{r['user']:<14} {r['mailbox']:<26} {mine:<9} {ast:<9} {state}")
        if ami_problem:
            print(f"Asterisk: {ami_problem}")
    return 0 if ami_problem is None and all(r["mailcall"] for r in rows) else 1


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
        # A reconcile of 10,000 mailboxes takes under 30 s; the wait is generous.
        out = _ask(args, settings, policy, control.Request("sync"), 600)
    except (CommandError, MwiConfigError) as exc:
        return _usage(exc)
    except control.ControlError as exc:
        return _failed(exc)
    if out is not None:
        out = {"source": "service", **out}
    else:
        read = _read_all(settings, watched, _spool(args, policy))
        sent, problem = asyncio.run(_publish(settings, watched, read))
        out = {"source": "this command", "mailboxes": len(watched), "published": sent,
               "unreadable": {u: str(r) for u, r in read.items() if not isinstance(r, Counts)},
               "asterisk_error": problem}
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        if out["source"] != "service":
            print(_not_running(args, settings, policy).replace("counted",
                                                               "read and published"))
        print(f"{out['published']} of {out['mailboxes']} lamps published")
        for uid, why in out["unreadable"].items():
            print(f"  {uid}: not published, {why}")
        if out["asterisk_error"]:
            print(f"Asterisk: {out['asterisk_error']}")
    return 0 if out["asterisk_error"] is None and not out["unreadable"] else 1


def _failed(exc: Exception) -> int:
    import sys

    print(f"mailcall mwi: {exc}", file=sys.stderr)
    return 1


def _usage(exc: Exception) -> int:
    import sys

    print(f"mailcall mwi: {exc}", file=sys.stderr)
    return 64
