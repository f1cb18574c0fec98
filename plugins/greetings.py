"""Built-in plugin: generated voicemail greetings for users who recorded none.

Greetings are spoken by `mailcall serve` (at start, then every few minutes, only
when their words changed) and by `mailcall greetings generate`, never during a
call: a call only plays a file.
The voicemail handler looks for the personal recording first
(``{greetings_dir}/{user}/{kind}.wav``), then this generated one
(``generated-{kind}.wav``), then Asterisk's stock prompts; both paths come from
the one rule of :mod:`mailcall.agi.folders`, so the file written is the file played.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import tempfile
import weakref
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailcall.agi.folders import GreetingPathRefused, generated_greeting_path, shared_folder
from mailcall.core.contracts import Service
from mailcall.core.decisions.greeting_text import greeting_text
from mailcall.core.hookspecs import hookimpl
from mailcall.core.policy.model import GREETING_KINDS, Policy
from mailcall.speech.engine import GreetingEngine, engines_from
from mailcall.userstore.overlay import decision_policy

log = logging.getLogger("mailcall.greetings")


def generate_greetings(policy: Policy, engines: Sequence[GreetingEngine], directory: Path,
                       now: datetime, users: Iterable[str] | None = None) -> list[Path]:
    """Write every missing or outdated generated greeting; return the files written.

    A ``.txt`` beside each WAV keeps the text it says, so nothing is spoken again
    unless the words changed (a new name, a new absence). `users` limits the work to
    those (a change in the user store); `policy` may be the store's refined view.
    `engines` were checked where they were collected (``engines_from`` names a plugin
    that offers anything else), so none is dropped here.
    """
    speakers = list(engines)
    written: list[Path] = []
    if not speakers:
        return written
    wanted = policy.users if users is None else [u for u in users if u in policy.users]
    for uid in wanted:
        user = policy.users[uid]
        for kind in GREETING_KINDS:
            try:  # where the voicemail handler looks for it: the one rule of agi/folders.py
                base = generated_greeting_path(directory, uid, kind)
            except GreetingPathRefused as exc:
                log.error("no greeting generated for this user: %s", exc)
                break
            text = greeting_text(policy, uid, kind, now)
            folder = base.parent
            wav, txt = base.with_name(base.name + ".wav"), base.with_name(base.name + ".txt")
            if text is None:
                # No absence ahead any more: an old absence greeting must not be played.
                for stale in (wav, txt):
                    stale.unlink(missing_ok=True)
                continue
            if wav.exists() and txt.exists() and txt.read_text("utf-8") == text:
                continue
            # Group-writable whatever the umask: Asterisk records personal greetings here.
            shared_folder(folder)
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".wav")
            os.close(fd)
            try:
                if not any(s.synthesize(text, user.language, tmp) for s in speakers):
                    continue
                os.chmod(tmp, 0o644)
                os.replace(tmp, wav)
                txt.write_text(text, "utf-8")
                written.append(wav)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
    return written


def _engines(pm: Any) -> list[GreetingEngine]:
    return engines_from(pm)


class GreetingsService:
    """Keeps generated greetings current while `mailcall serve` runs.

    They are checked at start and then every `interval` seconds, so a policy
    reload (a new user, a new absence) or an absence that begins or ends is
    heard by callers within minutes; nothing is spoken again unless its words
    changed. A user's own change in the user store (an absence set by the CLI,
    the web page or the phone) regenerates that user's greetings at once, from the
    same refined policy the call is routed with.
    """

    name = "greetings"
    interval = 300.0

    def __init__(self, runtime: Any) -> None:
        self.runtime = runtime
        self.task: asyncio.Task | None = None
        self.changes: set[str] = set()
        self.pending: asyncio.Task | None = None

    async def start(self) -> None:
        _RUNNING[self.runtime] = self  # heard by mailcall_user_settings_changed
        self.task = asyncio.get_running_loop().create_task(self._loop())

    def changed(self, users: frozenset[str]) -> None:
        """Called on the event loop when users' own settings changed: regenerate theirs."""
        self.changes |= users
        if self.pending is None or self.pending.done():
            self.pending = asyncio.get_running_loop().create_task(self._regenerate())

    async def _regenerate(self) -> None:
        while self.changes:
            users, self.changes = frozenset(self.changes), set()
            await self.refresh(users)

    async def _loop(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval)

    async def refresh(self, users: frozenset[str] | None = None) -> None:
        directory = Path(self.runtime.setting("greetings_dir"))
        try:
            written = await asyncio.get_running_loop().run_in_executor(
                None, generate_greetings, decision_policy(self.runtime),
                _engines(self.runtime.pm), directory, self.runtime.now(), users)
        except Exception:
            log.exception("generating greetings under %s failed; callers hear the stock "
                          "prompts until it works", directory)
            return
        if written:
            log.info("generated %d greeting(s) under %s", len(written), directory)

    async def stop(self, grace: float) -> None:
        if _RUNNING.get(self.runtime) is self:
            del _RUNNING[self.runtime]
        for task in (self.task, self.pending):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


_RUNNING: weakref.WeakKeyDictionary[Any, GreetingsService] = weakref.WeakKeyDictionary()
"""The greetings service running for each runtime (several runtimes can share a process)."""


@hookimpl
def mailcall_services(runtime: Any) -> list[Service]:
    return [GreetingsService(runtime)]


@hookimpl
def mailcall_user_settings_changed(runtime: Any, user_id: str, fields: frozenset[str]) -> None:
    """A user's absence, or anything their greetings say, may have changed: speak them again
    (only the greetings whose words changed are spoken)."""
    service = _RUNNING.get(runtime)
    if service is not None:
        service.changed(frozenset((user_id,)))


@hookimpl
def mailcall_register_commands(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("greetings", help="generate spoken greetings for users",
                              description="Speak the default greetings (unavailable, busy, "
                              "absence) of every user who has none, with the speech engines "
                              "installed (espeak-ng and sox by default).")
    p.add_argument("action", choices=("generate",))
    p.add_argument("--greetings-dir", default=None,
                   help="where to write (default: the policy's [server] greetings_dir)")
    p.set_defaults(handler=_generate_command)


def _generate_command(args: argparse.Namespace, loader: Callable[[], Policy]) -> int:
    policy = loader()
    engines = _engines(args.pm)
    if not any(isinstance(e, GreetingEngine) for e in engines):
        print("mailcall: no speech engine: install espeak-ng and sox "
              "(apt-get install espeak-ng sox) or a speech plugin")
        return 1
    directory = Path(args.greetings_dir or policy.server.greetings_dir)
    from mailcall.userstore.overlay import store_view
    from mailcall.userstore.paths import store_path

    # The users' own absences too, as `mailcall serve` speaks them.
    policy, problems = store_view(policy, store_path(policy.server), everyone=True)
    for problem in problems:
        print(f"mailcall: user store not applied: {problem}")
    written = generate_greetings(policy, engines, directory, datetime.now(UTC))
    print(f"{len(written)} greeting(s) written under {directory}")
    return 0
