"""``mailcall sieve generate``, ``mailcall sieve install`` and ``mailcall sieve client-vacation``.

``install`` never leaves Dovecot with a half-written or uncompilable script:
everything is generated and compiled with ``sievec`` in a staging directory
first, and only then moved into place file by file (``rename``). Compiling as
root matters too: LMTP runs as the mail user and cannot write the ``.svbin``
beside a root-owned script, so it would recompile and log an error on every
delivery.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from mailcall.core.policy.model import Policy
from mailcall.core.text import display_text

from .client_vacation import vacations
from .exec_client import client_script
from .generate import (
    GLOBAL_NAME,
    PROGRAM,
    USERS_DIR,
    generate,
    remove_stale,
    write_scripts,
)
from .sieve_syntax import SieveSyntaxError

DEFAULT_DIR = Path("/var/lib/mailcall/sieve")
DEFAULT_BIN_DIR = Path("/usr/local/lib/mailcall/sieve-bin")
SIEVEC = shutil.which("sievec") or "/usr/bin/sievec"


class InstallError(Exception):
    """Installation refused; nothing in the target directory was changed."""


def register(subparsers: argparse._SubParsersAction) -> None:
    sieve = subparsers.add_parser(
        "sieve", help="generate and install Dovecot Sieve scripts from the policy",
        description="Dovecot side of the policy: Sieve scripts that file voice and fax "
                    "messages, ask mailcall about mobile notifications and send absence "
                    "auto-replies. See docs/dovecot.md.")
    sub = sieve.add_subparsers(title="sieve commands", metavar="SUBCOMMAND")
    policy_opt = argparse.ArgumentParser(add_help=False)
    policy_opt.add_argument("--policy", type=Path, default=argparse.SUPPRESS,
                            help="policy file (default: $MAILCALL_POLICY or "
                                 "/etc/mailcall/policy.toml)")

    p = sub.add_parser("generate", parents=[policy_opt], help="write the scripts to a directory",
                       description="Write mailcall.sieve (for sieve_before) and users/ADDRESS."
                                   "sieve (for sieve_before2) into --out. Nothing is compiled "
                                   "or installed; see 'mailcall sieve install'.")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.set_defaults(handler=cmd_generate)

    p = sub.add_parser("install", parents=[policy_opt],
                       help="generate, compile with sievec and install the scripts",
                       description="Generate the scripts, compile each with sievec (nothing is "
                                   "installed if one fails), move them into --dir and install "
                                   "the fallback program into --bin-dir.")
    p.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                   help="where Dovecot reads the scripts (default: %(default)s)")
    p.add_argument("--bin-dir", type=Path, default=DEFAULT_BIN_DIR,
                   help="sieve_execute_bin_dir, for the fallback program (default: %(default)s)")
    p.add_argument("--socket", default=None,
                   help="the daemon's socket the fallback program connects to "
                        "(default: [server] sieve_socket of the policy)")
    p.add_argument("--dovecot-config", type=Path, default=None,
                   help="dovecot.conf to compile with (default: sievec's own default, "
                        "/etc/dovecot/dovecot.conf)")
    p.add_argument("--python", default="/usr/bin/python3",
                   help="interpreter for the fallback program; the mail user must be able to run "
                        "it (default: %(default)s; the program needs only the standard library)")
    p.set_defaults(handler=cmd_install)

    p = sub.add_parser("client-vacation",
                       help="show the vacations a user's own Sieve script can run (stdin)",
                       description="Read a user's Sieve script on stdin (as written, or "
                                   "'doveadm -f json sieve get' output) and print each vacation "
                                   "it can run, with its dates and words, and the personal "
                                   "scripts it includes. Nothing is changed. See "
                                   "docs/user-settings.md.")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=cmd_client_vacation)


def with_user_store(policy: Policy) -> Policy:
    """The policy with the users' own absences (user store) as ``mailcall serve`` answers them:
    an install must not remove the auto-reply of an absence a user set themselves."""
    from mailcall.userstore.overlay import store_view
    from mailcall.userstore.paths import store_path

    view, problems = store_view(policy, store_path(policy.server), everyone=True)
    for problem in problems:
        print(f"mailcall: user store not applied (only the policy file's absences are "
              f"answered): {problem}", file=sys.stderr)
    return view


def cmd_generate(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    policy = with_user_store(loader())
    written = write_scripts(generate(policy, now=datetime.now(UTC)), args.out)
    for path in written:
        print(path)
    return 0


def compile_script(path: Path, dovecot_config: Path | None) -> None:
    cmd = [SIEVEC]
    if dovecot_config is not None:
        cmd += ["-c", str(dovecot_config)]
    cmd.append(str(path))
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise InstallError(
            f"sievec rejected {path.name}:\n{(result.stderr or result.stdout).strip()}\n"
            "Nothing was installed. If the error names an unknown extension, check that "
            "90-mailcall.conf is in /etc/dovecot/conf.d (sieve_plugins = sieve_extprograms)."
        )


def install(policy: Policy, target: Path, bin_dir: Path | None, socket_path: str | None,
            dovecot_config: Path | None, python: str = "/usr/bin/python3") -> list[Path]:
    scripts = generate(policy, now=datetime.now(UTC))
    target.mkdir(parents=True, exist_ok=True)
    (target / USERS_DIR).mkdir(exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    try:
        staged = write_scripts(scripts, staging)
        for path in staged:
            compile_script(path, dovecot_config)
        installed = []
        for path in staged:
            # A binary records where its script lived: compile again in the final place.
            final = target / path.relative_to(staging)
            path.chmod(0o644)
            os.replace(path, final)
            compile_script(final, dovecot_config)
            final.with_suffix(".svbin").chmod(0o644)
            installed.append(final)
        remove_stale(target, installed)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if bin_dir is not None and socket_path:
        bin_dir.mkdir(parents=True, exist_ok=True)
        program = bin_dir / PROGRAM
        tmp = program.with_name(f".{PROGRAM}.tmp")
        tmp.write_text(client_script(socket_path, python))
        tmp.chmod(0o755)
        os.replace(tmp, program)
        installed.append(program)
    return installed


def cmd_install(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    policy = with_user_store(loader())
    socket_path = args.socket or policy.server.sieve_socket
    try:
        installed = install(policy, args.dir, args.bin_dir, socket_path, args.dovecot_config,
                            args.python)
    except InstallError as exc:
        print(f"mailcall sieve install: {exc}")
        return 1
    for path in installed:
        print(f"installed {path}")
    if not socket_path:
        print("note: [server] sieve_socket is not set: `mailcall serve` will not answer Sieve, "
              "and no fallback program was installed. Set it (see docs/dovecot.md).")
    print(
        "\nDovecot re-reads Sieve scripts at each delivery: script changes need no reload.\n"
        "First install only: copy contrib/dovecot/90-mailcall.conf to "
        "/etc/dovecot/conf.d/, check that its paths match:\n"
        f"  sieve_before  = {args.dir / GLOBAL_NAME}\n"
        f"  sieve_before2 = {args.dir / USERS_DIR}/%u.sieve\n"
        f"  sieve_execute_bin_dir = {args.bin_dir}\n"
        "then run:  doveconf -n >/dev/null && doveadm reload"
    )
    return 0


def cmd_client_vacation(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    """Read a script on stdin, print its vacations (``--json`` for a machine).

    Also takes ``doveadm -f json sieve get`` output as it is: doveadm's other formats put a
    "sieve script" header before the text. (No Sieve script starts with ``[``.)
    """
    text = sys.stdin.read()
    if text.lstrip().startswith("["):
        try:
            text = "".join(row["sieve script"] for row in json.loads(text))
        except (ValueError, TypeError, KeyError):
            print("stdin starts with '[' but is not `doveadm -f json sieve get` output",
                  file=sys.stderr)
            return 65
    try:
        found, includes = vacations(text, "stdin")
    except SieveSyntaxError as exc:
        print(f"not a Sieve script: {exc}", file=sys.stderr)
        return 65
    if args.json:
        print(json.dumps({"vacations": [asdict(v) for v in found], "includes": includes},
                         default=str, indent=2))
        return 0
    for v in found:
        print(v.describe())
    for name in includes:
        print(f"includes personal script {display_text(name, 80)!r} (read it too)")
    if not found:
        print("no vacation in this script")
    return 0

