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

Other parts of mailcall read what the lamp knows through the hook
``mailcall_voice_counts`` (notifications: "3 new voice messages"; the phone
menu's greeting), answered by :mod:`mailcall.mwi.running` while the service
runs; ``mailcall mwi status|sync`` ask the running service through its
control socket (:mod:`mailcall.mwi.control`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

from mailcall.ami.client import AmiClient
from mailcall.ami.messages import Event
from mailcall.core.errors import ServiceStartError
from mailcall.deposit.seal import DepositKeyError, deposit_key, existing_deposit_key

from . import control
from .config import MwiSettings
from .count_reports import CountReports
from .counts import CountError, Counts
from .imap import ImapCounter
from .ledger import Ledger
from .publisher import Publisher
from .refresher import Refresher, Result
from .running import LampHooks
from .triggers import TriggerListener
from .watched import Watched, all_watched, mailbox_collisions

log = logging.getLogger("mailcall.mwi")

BOOT_WAIT = 2.0
"""A FullyBooted later than this after the login means Asterisk was still starting."""
OVERFLOW_QUIET = 2.0
"""Seconds without a trigger refused for overload before everyone is recounted."""
OVERFLOW_LATEST = 10.0
"""...and at most this long after the first refusal of a burst."""


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
        self.triggers = (TriggerListener(settings.lamp.trigger_socket, self.poke_login,
                                         on_overflow=self._trigger_overflow)
                         if settings.lamp.trigger_socket else None)
        self._overflow: asyncio.TimerHandle | None = None
        self.control: control.ControlListener | None = None
        self.reports = CountReports(self.counter.where, settings.imap.folder)
        self._watched: dict[str, Watched] = {}
        self._by_login: dict[str, list[str]] = {}
        """Dovecot login -> users (two users may share one mailbox address)."""
        self._watched_from: Any = None
        """The policy snapshot `_watched` was computed from."""
        self._collisions_told: dict[str, list[str]] = {}
        self._unknown_logins: set[str] = set()
        self._clashing_logins: set[str] = set()
        self._logins = 0
        self._overflow_first = 0.0
        self._key_lock = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reconciling: asyncio.Task[None] | None = None
        self._reconcile_again = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_reconcile_seconds: float | None = None
        self.reconciles = 0
        self._hooks = LampHooks(self)

    # ----------------------------------------------------------- public API

    def counts(self, user: str) -> Counts | None:
        """What the lamp knows of `user`'s voice folder (None: never read yet)."""
        w = self._watched.get(user)
        return None if w is None else self.ledger.known(w.mailbox)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The event loop the service runs on (None: not running)."""
        return self._loop

    def watches(self, user: str) -> bool:
        return user in self._watched

    async def settled_counts(self, user: str) -> Counts | None:
        """`user`'s counts once any recount already asked for is done; None when the
        folder could not be read lately (a stale number is not told as the truth)."""
        w = self._watched.get(user)
        if w is None:
            return None
        await self.refresher.settled(user)
        if self.reports.imap_down is not None or user in self.reports.last_error:
            return None
        return self.ledger.known(w.mailbox)

    def status(self, users: tuple[str, ...] | None = None) -> dict[str, Any]:
        """What the service believes, for ``mailcall mwi status`` (JSON-ready)."""
        rows = []
        for uid in self._watched if users is None else users:
            w = self._watched.get(uid)
            if w is None:
                rows.append({"user": uid, "watched": False})
                continue
            known = self.ledger.known(w.mailbox)
            published = self.ledger.published(w.mailbox)
            rows.append({
                "user": uid, "watched": True, "mailbox": w.mailbox, "login": w.login,
                "known": known.to_dict() if known else None,
                "published": published.to_dict() if published else None,
                "error": self.reports.last_error.get(uid)})
        return {"users": rows, "service": {
            "ami_connected": self.ami.connected, "ami": self.ami.where,
            "imap_down": self.reports.imap_down, "reconciles": self.reconciles,
            "last_reconcile_seconds": self.last_reconcile_seconds, "due": self.ledger.due}}

    async def sync(self, publish_timeout: float = 60.0) -> dict[str, Any]:
        """A full reconcile now (after any pass under way), every lamp sent again; what
        was read and published, for ``mailcall mwi sync``."""
        self.reconcile(republish=True)
        await self.reconciled()
        sent = await self.publisher.settled(publish_timeout)
        watched = self._watched
        published = sum(1 for w in watched.values()
                        if self.ledger.known(w.mailbox) is not None
                        and self.ledger.published(w.mailbox) == self.ledger.known(w.mailbox))
        problem = None
        if not self.ami.connected:
            problem = (f"mailcall serve is not logged in to Asterisk AMI at {self.ami.where}; "
                       f"the lamps are sent when it is (see its log)")
        elif not sent:
            problem = f"Asterisk had not taken every lamp after {publish_timeout:g} s"
        return {"mailboxes": len(watched), "published": published,
                "unreadable": {u: self.reports.last_error[u] for u in watched
                               if u in self.reports.last_error},
                "asterisk_error": problem}

    async def _on_control(self, request: control.Request) -> dict[str, Any]:
        if request.verb == "status":
            return self.status(request.users)
        return await self.sync()

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
        if user not in self._watched and self._policy_changed():
            # A user added by a reload gets a lamp at their first poke.
            self._refresh_watch(recount_changed=True)
        if user in self._watched:
            self.refresher.poke(user)

    def poke_login(self, login: str) -> None:
        """The IMAP trigger names the Dovecot user; map it to mailcall users."""
        key = login.lower()
        if key not in self._by_login and self._policy_changed():
            self._refresh_watch(recount_changed=True)
        users = self._by_login.get(key)
        if users:
            for user in users:
                self.refresher.poke(user)
        elif key in self._clashing_logins:
            log.debug("mwi trigger for %r, whose lamp is off (mailbox id shared)", login)
        elif key not in self._unknown_logins and len(self._unknown_logins) < 1000:
            # Once per login: a mismatch ([lamp] login = "email" or "id" against what
            # Dovecot calls its users) would otherwise silently stop every IMAP trigger.
            self._unknown_logins.add(key)
            log.warning("mwi: the IMAP trigger names %r, who is no watched user: check "
                        "[lamp] login in mwi.toml (\"email\" or \"id\") against the user "
                        "names Dovecot logs", login)

    def _policy_changed(self) -> bool:
        return self.runtime.policy is not self._watched_from

    def reconcile(self, *, republish: bool = False) -> None:
        """Recount everyone in the background; `republish` first resends every known lamp."""
        if republish:
            self.ledger.republish_all()
            self.publisher.wake()
        if self._reconciling is not None and not self._reconciling.done():
            # The pass under way may have read some mailboxes before the cause of this
            # request: one more pass follows it (however many requests come meanwhile).
            self._reconcile_again = True
            return
        self._reconciling = self._spawn(self._reconcile())

    async def reconciled(self) -> None:
        """Wait until no reconcile is under way or asked for (tests, ``mailcall mwi sync``)."""
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
        self.control = control.ControlListener(
            control.socket_path(self.settings.lamp.control_socket,
                                self.runtime.setting("spool_dir")), self._on_control)
        await self.control.start()
        await self.ami.start()
        self.runtime.pm.register(self._hooks)
        self.reconcile()
        self._spawn(self._periodic())
        log.info("mwi: watching %d mailboxes; AMI %s, IMAP %s, trigger socket %s, "
                 "control socket %s", len(self._watched), self.ami.where, self.counter.where,
                 self.settings.lamp.trigger_socket or "(none: deposits and reconcile only)",
                 self.control.path)

    async def stop(self, grace: float) -> None:
        self._loop = None
        if self._overflow is not None:
            self._overflow.cancel()
            self._overflow = None
        if self.runtime.pm.is_registered(self._hooks):
            self.runtime.pm.unregister(self._hooks)
        if self.triggers is not None:
            await self.triggers.stop()
        if self.control is not None:
            await self.control.stop()
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

    def _refresh_watch(self, *, recount_changed: bool = False) -> None:
        """Who is watched, from the current policy; `recount_changed`: recount users who
        are new or shown under another mailbox id now (a reconcile counts everyone anyway)."""
        policy = self.runtime.policy
        everyone = all_watched(policy, self.settings)
        collisions = mailbox_collisions(everyone)
        if collisions != self._collisions_told:
            for box, users in sorted(collisions.items()):
                log.warning("mwi: users %s would share the Asterisk mailbox %r: neither lamp "
                            "is sent (one lamp cannot show two mailboxes); make [lamp] "
                            "mailbox in mwi.toml unique per user, e.g. \"{id}@mailcall\"",
                            ", ".join(users), box)
            self._collisions_told = collisions
        clashing = {u for users in collisions.values() for u in users}
        self._clashing_logins = {everyone[u].login.lower() for u in clashing}
        watched = {uid: w for uid, w in everyone.items() if uid not in clashing}
        for uid, old in self._watched.items():
            new = watched.get(uid)
            if new is None or new.mailbox != old.mailbox:
                # Gone from the policy, or shown under another id now: the old lamp is
                # switched off in Asterisk, not left lit for nobody.
                self.ledger.retire(old.mailbox)
                self.reports.last_error.pop(uid, None)
        for w in watched.values():
            self.ledger.unretire(w.mailbox)
            before = self._watched.get(w.user)
            if recount_changed and (before is None or before.mailbox != w.mailbox):
                self.refresher.poke(w.user)
        self.publisher.wake()
        self._watched = watched
        self._watched_from = policy
        by_login: dict[str, list[str]] = {}
        for w in watched.values():
            by_login.setdefault(w.login.lower(), []).append(w.user)
        self._by_login = by_login

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
            self.reports.counted(user)
            if self.ledger.observe(w.mailbox, result):
                self.publisher.wake()
            return
        # Never publish a guess: the last known lamp stays as it is.
        if self.reports.outage(user, result):
            return
        first = self.ledger.failed(w.mailbox, result.kind)
        self.reports.mailbox_failed(user, result, first)

    def _trigger_overflow(self) -> None:
        """A trigger was refused (too many at once): whose lamp changed is unknown, so
        everyone is recounted once the burst has been quiet for OVERFLOW_QUIET seconds."""
        loop = asyncio.get_running_loop()
        if self._overflow is None:
            self._overflow_first = loop.time()
            log.warning("mwi: more than %d IMAP triggers at once; those over the limit were "
                        "refused, and every lamp is recounted when the burst ends",
                        self.triggers.max_connections if self.triggers else 0)
        else:
            self._overflow.cancel()
        # Quiet for OVERFLOW_QUIET seconds, but never later than OVERFLOW_LATEST after the
        # first refusal: a sustained overload must not postpone the recount for ever.
        at = min(loop.time() + OVERFLOW_QUIET, self._overflow_first + OVERFLOW_LATEST)
        self._overflow = loop.call_at(at, self._after_overflow)

    def _after_overflow(self) -> None:
        self._overflow = None
        self.reconcile()

    def _on_login(self) -> None:
        """A new AMI connection: Asterisk may have restarted, so every known lamp is sent
        again (before anything else is sent on this connection); after a reconnect everyone
        is recounted too (the first login follows the start's own reconcile)."""
        self._logins += 1
        self.ledger.republish_all()
        self.publisher.wake()
        if self._logins > 1:
            self.reconcile()

    def _on_event(self, event: Event) -> None:
        # Asterisk sends FullyBooted right after the login when it is up (handled by the
        # login), and later when we logged in while it was still starting.
        # The login time is the client's, set as the login's answer is read: a FullyBooted
        # in the same read as that answer reaches us before the connect listener runs.
        at = self.ami.logged_in_at
        if (event.name == "FullyBooted" and at is not None
                and asyncio.get_running_loop().time() - at > BOOT_WAIT):
            self.reconcile(republish=True)

    async def _reconcile(self) -> None:
        while True:
            self._reconcile_again = False
            await self._reconcile_once()
            if not self._reconcile_again:
                return

    async def _reconcile_once(self) -> None:
        self._refresh_watch()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await self.refresher.count_all(self._watched)
        self.reconciles += 1
        self.last_reconcile_seconds = loop.time() - t0
        log.info("mwi: reconciled %d mailboxes in %.1f s", len(self._watched),
                 self.last_reconcile_seconds)
        self.reports.summarise(self._watched)

    async def _periodic(self) -> None:
        # The safety net covers Asterisk's side too: a lamp lost there (a module reload,
        # an MWIDelete by hand, an update refused during its boot) is sent again.
        while True:
            await asyncio.sleep(self.settings.lamp.reconcile_interval)
            self.reconcile(republish=True)
