"""Keeping the per-user auto-reply scripts current while ``mailcall serve`` runs.

The absence auto-reply is Dovecot's own RFC 5230 ``vacation``, in the per-user
script ``sieve_before2`` runs (:mod:`.generate`): Dovecot then keeps the
"once per sender per N days" memory, the RFC 3834 checks and the sending, and
the reply starts and stops on time by its ``currentdate`` guards. Running before
the user's own script also makes it the only reply while it applies: Pigeonhole
drops a later script's ``vacation`` of the same delivery, so a vacation set in the
mail client answers only outside mailcall's absences (:mod:`.client_vacation`).
A user's own absence (user store) is obeyed the same way: when the store says a user
changed, that user's script alone is rewritten from the refined policy — the
same words as the absence greeting and the same dates as the call routing —
rather than having Dovecot ask mailcall at every delivery, which would need
``execute :output`` (a timeout of it crashes Dovecot 2.3.19's LMTP, see
../shared/dovecot/README.md) and would make every reply depend on mailcall
being up.

A script is written only when its text changes, atomically (rename), and its
stale ``.svbin`` removed so that Dovecot never runs the old binary; it is then
compiled with ``sievec`` when one is installed (else Dovecot compiles it at the
next delivery). A file without mailcall's marker is the admin's and is never
touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import shutil
import subprocess
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from mailcall.core.policy.model import Policy
from mailcall.userstore.overlay import decision_policy

from .generate import MARKER, USERS_DIR, script_of_user, user_file_name

log = logging.getLogger("mailcall.sieve.scripts")

ENV_DIR = "MAILCALL_SIEVE_DIR"
ENV_CONFIG = "MAILCALL_DOVECOT_CONFIG"


def scripts_dir(runtime: Any) -> Path:
    """``sieve_dir`` override, ``$MAILCALL_SIEVE_DIR``, else ``sieve/`` in the state
    directory (beside the greetings folder): ``mailcall sieve install``'s default."""
    given = runtime.overrides.get("sieve_dir") or os.environ.get(ENV_DIR)
    if given:
        return Path(given)
    return Path(runtime.setting("greetings_dir")).parent / "sieve"


def update_user_scripts(policy: Policy, users: Iterable[str], folder: Path, now: datetime, *,
                        sievec: str | None = None, dovecot_config: str | None = None
                        ) -> list[Path]:
    """Rewrite or remove the per-user scripts of `users` under `folder`; the files changed."""
    changed: list[Path] = []
    for uid in sorted(set(users)):
        if uid not in policy.users:
            continue
        user = policy.users[uid]
        try:
            path = folder / USERS_DIR / user_file_name(user)
        except ValueError as exc:
            log.warning("no auto-reply script for %s: %s", uid, exc)
            continue
        try:
            script = script_of_user(policy, uid, now)
        except Exception as exc:  # one user's bad data must not stop the others
            log.error("cannot make the auto-reply script of %s (%s: %s): their file %s is left "
                      "as it is, the other users' scripts are still written; look at their "
                      "absences with 'mailcall user show %s' and fix or clear the wrong one "
                      "('mailcall absence clear %s --id N', or the [[absences]] of the policy "
                      "file)", uid, type(exc).__name__, exc, path, uid, uid)
            continue
        try:
            current = path.read_text("utf-8") if path.exists() else None
        except OSError as exc:
            log.warning("cannot read %s (%s): the auto-reply of %s is not updated", path,
                        exc.strerror, uid)
            continue
        if current is not None and not current.startswith(MARKER):
            log.warning("%s is not mailcall's (no %r line): left as it is; the absence of %s "
                        "is not answered by mailcall", path, MARKER, uid)
            continue
        try:
            if script is None:
                if current is not None:
                    path.unlink()
                    path.with_suffix(".svbin").unlink(missing_ok=True)
                    changed.append(path)
                continue
            if current == script.text:
                continue
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(script.text, encoding="utf-8")
            tmp.chmod(0o644)
            os.replace(tmp, path)
            path.with_suffix(".svbin").unlink(missing_ok=True)
        except OSError as exc:
            log.error("cannot write the auto-reply script %s of %s: %s; mail to them is "
                      "answered as before until it can (the folder must be writable by the "
                      "user mailcall runs as: docs/user-settings.md)", path, uid, exc.strerror)
            continue
        changed.append(path)
        if sievec:
            _compile(sievec, dovecot_config, path)
    return changed


def _compile(sievec: str, config: str | None, path: Path) -> None:
    cmd = [sievec, *(["-c", config] if config else []), str(path)]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("sievec could not compile %s (%s): Dovecot compiles it at the next "
                    "delivery", path, exc)
        return
    if result.returncode != 0:
        path.with_suffix(".svbin").unlink(missing_ok=True)
        log.warning("sievec refused %s: %s; Dovecot compiles it at the next delivery "
                    "(and logs the same error)", path,
                    (result.stderr or result.stdout).strip()[:500])


class UserScriptsService:
    """A ``mailcall serve`` service: rewrites a user's auto-reply script when they change."""

    name = "sieve-user-scripts"

    def __init__(self, runtime: Any, folder: Path | None = None) -> None:
        self.runtime = runtime
        self.folder = folder or scripts_dir(runtime)
        self.sievec = shutil.which("sievec")
        self.dovecot_config = (runtime.overrides.get("dovecot_config")
                               or os.environ.get(ENV_CONFIG) or None)
        self.pending: set[str] = set()
        self.task: asyncio.Task | None = None
        self.active = False

    async def start(self) -> None:
        if not (self.folder / USERS_DIR).is_dir():
            log.info("no %s: users' own absences are not answered by Sieve auto-replies "
                     "(run 'mailcall sieve install --dir %s', or set $%s)",
                     self.folder / USERS_DIR, self.folder, ENV_DIR)
            return
        self.active = True
        # Scripts written before a restart: absences cleared meanwhile must go.
        by_email = self.runtime.policy.by_email
        for old in (self.folder / USERS_DIR).glob("*.sieve"):
            uid = by_email.get(old.name[:-len(".sieve")])
            if uid is not None:
                self.pending.add(uid)
        if self.pending:  # later changes: hook mailcall_user_settings_changed (plugins/sieve.py)
            self.changed(frozenset())

    def changed(self, users: frozenset[str]) -> None:
        self.pending |= users
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self.pending:
            users, self.pending = frozenset(self.pending), set()
            # Refined here, on the loop: the store's connection belongs to this thread.
            policy, now = decision_policy(self.runtime), self.runtime.now()
            try:
                written = await loop.run_in_executor(None, functools.partial(
                    update_user_scripts, policy, users, self.folder, now, sievec=self.sievec,
                    dovecot_config=self.dovecot_config))
            except Exception:
                log.exception("updating the auto-reply scripts of %d user(s) under %s failed",
                              len(users), self.folder)
                continue
            for path in written:
                log.info("auto-reply script %s %s", path,
                         "updated" if path.exists() else "removed (no absence ahead)")

    async def stop(self, grace: float) -> None:
        if self.task is not None and not self.task.done():
            with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.task), grace)
