"""The lamp as a ``mailcall serve`` service: counts, triggers, reconcile, publishing.

Wiring, in one place:

* users watched = the policy's users whose voicemail is enabled (read again at
  each reconcile, so a reloaded policy applies);
* a poke (deposit delivered, IMAPSieve trigger, phone menu) recounts one user;
* a full reconcile recounts everyone: at start, after each AMI login (every
  known lamp is republished at once, then recounted: Asterisk may have
  restarted), on ``FullyBooted``, and every ``reconcile_interval`` seconds;
* a count that fails keeps the last known lamp and is logged once per spell:
  IMAP down is one line for all mailboxes, a refused login or a missing folder
  one line per user.

Other parts of mailcall read what the lamp knows through ``runtime.mwi``
(:meth:`MwiService.counts`): notifications ("3 new voice messages") and the
phone menu's greeting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from dataclasses import dataclass
from typing import Any

from mailcall.ami.client import AmiClient
from mailcall.ami.protocol import Event
from mailcall.core.errors import ServiceStartError
from mailcall.deposit.seal import DepositKeyError, deposit_key, existing_deposit_key

from .config import MwiSettings
from .counts import CountError, Counts
from .imap import ImapCounter
from .ledger import Ledger
from .publisher import Publisher
from .refresher import Refresher, Result
from .triggers import TriggerListener

log = logging.getLogger("mailcall.mwi")

BOOT_WAIT = 2.0
"""A FullyBooted later than this after the login means Asterisk was still starting."""


@dataclass(frozen=True, slots=True)
class Watched:
    user: str
    login: str
    mailbox: str
    recipient: str
    """The address deposits are sealed for (DepositPlan.recipient: the user's email)."""


def watched_users(policy: Any, settings: MwiSettings) -> dict[str, Watched]:
    """user id -> who to count and which Asterisk mailbox shows it."""
    lamp = settings.lamp
    out: dict[str, Watched] = {}
    for user in policy.users.values():
        if not user.features.voicemail.enabled:
            continue
        extension = user.extensions[0] if user.extensions else user.id
        mailbox = lamp.mailbox.replace("{id}", user.id).replace("{extension}", extension)
        login = user.email if lamp.login == "email" else user.id
        out[user.id] = Watched(user.id, login, mailbox, user.email)
    return out


class MwiService:
    name = "mwi"

    def __init__(self, runtime: Any, settings: MwiSettings, *,
                 counter: ImapCounter | None = None, ami: AmiClient | None = None) -> None:
        self.runtime = runtime
        self.settings = settings
        a = settings.ami
        self.ami = ami or AmiClient(a.host, a.port, a.username, a.secret_file,
                                    action_prefix="mailcall-mwi")
        self.counter = counter or ImapCounter(settings.imap, key=self._deposit_key)
        self.ledger = Ledger(min_interval=settings.lamp.min_interval)
        self.publisher = Publisher(self.ami, self.ledger)
        self.refresher = Refresher(self._count, self._counted,
                                   max_connections=settings.imap.max_connections,
                                   debounce=settings.lamp.debounce)
        self.triggers = (TriggerListener(settings.lamp.trigger_socket, self.poke_login)
                         if settings.lamp.trigger_socket else None)
        self._watched: dict[str, Watched] = {}
        self._by_login: dict[str, str] = {}
        self._imap_down: str | None = None
        self._no_folder: set[str] = set()
        self._no_folder_told: frozenset[str] = frozenset()
        self._refused: set[str] = set()
        """Users whose master login was refused since the last summary (one line per problem)."""
        self._key_lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconciling: asyncio.Task[None] | None = None
        self._login_at = float("-inf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_reconcile_seconds: float | None = None
        self.reconciles = 0
        runtime.mwi = self

    # ----------------------------------------------------------- public API

    def counts(self, user: str) -> Counts | None:
        """What the lamp knows of `user`'s voice folder (None: never read yet)."""
        w = self._watched.get(user)
        return None if w is None else self.ledger.known(w.mailbox)

    def poke(self, user: str) -> None:
        """`user`'s voice folder may have changed (a deposit, the phone menu): recount it.

        Safe from any thread: the phone menu's blocking IMAP work runs in worker threads,
        and a poke from there is handed to the event loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return  # not started, or stopped: the next start reconciles everyone
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._poke(user)
        else:
            loop.call_soon_threadsafe(self._poke, user)

    def _poke(self, user: str) -> None:
        if user in self._watched:
            self.refresher.poke(user)

    def poke_login(self, login: str) -> None:
        """The IMAP trigger names the Dovecot user; map it to a mailcall user."""
        user = self._by_login.get(login.lower())
        if user is not None:
            self.refresher.poke(user)
        else:
            log.debug("mwi trigger for %r, who is no watched user", login)

    def reconcile(self, *, republish: bool = False) -> None:
        """Recount everyone in the background; `republish` first resends every known lamp."""
        if republish:
            self.ledger.republish_all()
            self.publisher.wake()
        if self._reconciling is not None and not self._reconciling.done():
            # The pass under way reads IMAP now; what it finds changed is published.
            return
        self._reconciling = self._spawn(self._reconcile())

    async def reconciled(self) -> None:
        """Wait for the reconcile under way (tests, ``mailcall mwi sync``)."""
        while self._reconciling is not None and not self._reconciling.done():
            await asyncio.shield(self._reconciling)

    # ------------------------------------------------------------- service

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        # First start of a new site: the key is written now, as the spool and the bridge do;
        # after that, counts only read it (a key that vanished is an error, never 0/0).
        try:
            with self._key_lock:
                deposit_key(self.runtime.setting("spool_dir"))
        except DepositKeyError as exc:
            raise ServiceStartError(f"mwi: {exc}") from None
        self._refresh_watch()
        self.ami.add_event_listener(self._on_event)
        self.ami.add_connect_listener(self._on_login)
        await self.refresher.start()
        await self.publisher.start()
        if self.triggers is not None:
            await self.triggers.start()
        await self.ami.start()
        self.reconcile()
        self._spawn(self._periodic())
        log.info("mwi: watching %d mailboxes; AMI %s, IMAP %s, trigger socket %s",
                 len(self._watched), self.ami.where, self.counter.where,
                 self.settings.lamp.trigger_socket or "(none: deposits and reconcile only)")

    async def stop(self, grace: float) -> None:
        self._loop = None
        if self.triggers is not None:
            await self.triggers.stop()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.refresher.stop()
        await self.publisher.stop()
        await self.ami.stop()

    # ------------------------------------------------------------ internals

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _refresh_watch(self) -> None:
        watched = watched_users(self.runtime.policy, self.settings)
        for gone in set(self._watched) - set(watched):
            self.ledger.forget(self._watched[gone].mailbox)
        self._watched = watched
        self._by_login = {w.login.lower(): w.user for w in watched.values()}

    def _deposit_key(self) -> bytes:
        # One thread at a time: seal.deposit_key's first-use creation is not thread-safe.
        with self._key_lock:
            return existing_deposit_key(self.runtime.setting("spool_dir"))

    def _count(self, user: str) -> Counts:
        w = self._watched.get(user)
        if w is None:
            raise CountError("folder", f"{user} is no longer a watched user")
        return self.counter.count(w.login, w.recipient)

    def _counted(self, user: str, result: Result) -> None:
        w = self._watched.get(user)
        if w is None:
            return
        if isinstance(result, Counts):
            self._no_folder.discard(user)
            if self._imap_down is not None:
                log.info("mwi: IMAP server %s answers again; lamps follow the mailboxes",
                         self.counter.where)
                self._imap_down = None
            if self.ledger.observe(w.mailbox, result):
                self.publisher.wake()
            return
        # Never publish a guess: the last known lamp stays as it is.
        if result.kind in ("unreachable", "key"):
            if self._imap_down is None:  # one line per outage, whatever the errno of each try
                self._imap_down = result.kind
                log.warning("mwi: %s; lamps keep their last known state until it answers",
                            result)
            return
        first = self.ledger.failed(w.mailbox, result.kind)
        if result.kind == "folder":
            # Users who never got a voicemail have no folder yet: one summary per reconcile.
            self._no_folder.add(user)
            log.debug("mwi: %s: %s", user, result)
        elif result.kind == "auth":
            # A wrong master password refuses everyone: one line, then a count at the end
            # of the reconcile, not one line per user.
            if not self._refused:
                log.warning("mwi: %s: %s; lamps keep their last known state", user, result)
            self._refused.add(user)
        elif first:
            log.warning("mwi: %s: %s; %s's lamp keeps its last known state", user, result,
                        user)

    def _on_login(self) -> None:
        """A new AMI connection: Asterisk may have restarted, so every known lamp is sent
        again (before anything else is sent on this connection), then everyone is recounted."""
        self._login_at = asyncio.get_running_loop().time()
        self.ledger.republish_all()
        self.publisher.wake()
        self.reconcile()

    def _on_event(self, event: Event) -> None:
        # Asterisk sends FullyBooted right after the login when it is up (handled by the
        # login), and later when we logged in while it was still starting.
        if (event.name == "FullyBooted"
                and asyncio.get_running_loop().time() - self._login_at > BOOT_WAIT):
            self.reconcile(republish=True)

    async def _reconcile(self) -> None:
        self._refresh_watch()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self.refresher.count_all(self._watched)
        self.reconciles += 1
        self.last_reconcile_seconds = loop.time() - t0
        log.info("mwi: reconciled %d mailboxes in %.1f s", len(self._watched),
                 self.last_reconcile_seconds)
        missing = frozenset(self._no_folder & set(self._watched))
        if missing and missing != self._no_folder_told:
            names = ", ".join(sorted(missing)[:5]) + (", ..." if len(missing) > 5 else "")
            log.warning("mwi: %d users have no folder %r yet (%s): their lamps stay as they "
                        "are until a voice deposit creates it; if every user is listed, check "
                        "[mail] voice_folder of the policy", len(missing),
                        self.settings.imap.folder, names)
        self._no_folder_told = missing
        if len(self._refused) > 1:
            names = ", ".join(sorted(self._refused)[:5]) + (
                ", ..." if len(self._refused) > 5 else "")
            log.warning("mwi: the IMAP server refused the master login for %d users (%s): "
                        "check the master passdb and the password file (docs/mwi.md)",
                        len(self._refused), names)
        self._refused = set()

    async def _periodic(self) -> None:
        # The safety net covers Asterisk's side too: a lamp lost there (a module reload,
        # an MWIDelete by hand, an update refused during its boot) is sent again.
        while True:
            await asyncio.sleep(self.settings.lamp.reconcile_interval)
            self.reconcile(republish=True)
