"""The phone menu's door to mailboxes: one IMAP connection per call, bounded, never stalling.

Why the standard library's blocking ``imaplib`` in worker threads (as the lamp
does), through :func:`mailcall.imap.connect_as`: the master-user and SASL
authzid login is written once there, a call holds its one connection for a
few minutes of short commands, and the bound on connections is the
:class:`asyncio.Semaphore` below. IMAPClient's response parser reads the
answers (BODYSTRUCTURE, literals), so no IMAP grammar is hand-written here.
aioimaplib would put the socket on the event loop, but would mean a second
login implementation and hand parsing of its raw lines; its gain — no thread
per operation — is small beside a call's few commands.

Time bound: every operation, and the opening (connect + login), must answer
within ``settings.timeout``. When it does not, the connection is shut down
under the blocked thread (which then returns at once), the session is closed
and :class:`MailboxUnavailable` raised: the menu apologises within 2 s and the
call goes on. An operation already sent runs to its end even if the call's
task is cancelled (a hang-up): a MOVE is never half done, and the logout
waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import imaplib
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from typing import Any, TypeVar

from mailcall.imap import ImapLoginError, connect_as, describe

from .errors import MailboxUnavailable, MessageUnreadable
from .mailbox import Mailbox
from .readable import Readable
from .settings import MailstoreSettings
from .summary import MessageSummary, UnreadMail, VoiceMail
from .trash_copies import TrashCopies

log = logging.getLogger(__name__)
T = TypeVar("T")


class MailStore:
    """Built once per process from settings; :meth:`session` opens one call's mailbox."""

    def __init__(self, settings: MailstoreSettings, key: Callable[[], bytes],
                 password: Callable[[], str] | None = None) -> None:
        self.settings = settings
        self._key = key
        """The deposit key (read at each list: never cached across a replacement)."""
        self._password = password
        self._slots = asyncio.Semaphore(settings.max_connections)
        self._pool = ThreadPoolExecutor(max_workers=settings.max_connections + 4,
                                        thread_name_prefix="mailstore")
        self.open_sessions = 0
        self.trash_copies = TrashCopies()
        """Deletes cut between COPY and \\Deleted, for the retry on a later session."""

    @contextlib.asynccontextmanager
    async def session(self, login: str, *, address: str | None = None
                      ) -> AsyncIterator[MailboxSession]:
        """One call's mailbox: `login` is the IMAP user name, `address` the user's address
        deposits are sealed for (default: `login`). Raises MailboxUnavailable on entry."""
        s = self.settings
        try:
            await asyncio.wait_for(self._slots.acquire(), s.timeout)
        except TimeoutError:
            raise MailboxUnavailable("busy", f"all {s.max_connections} IMAP connections of the "
                                     f"phone menu are in use (max_connections)") from None
        release = _once(self._slots.release)
        box: MailboxSession | None = None
        try:
            try:
                box = MailboxSession(self, await self._open(login, address or login), release)
            except _StillOpening as late:
                # The slot is the connection's, not the call's: given back when the login
                # thread has ended (and logged out whatever it opened).
                release.deferred = True
                late.future.add_done_callback(lambda _f: release())
                raise late.error from None
            self.open_sessions += 1
            yield box
        except BaseException:
            if box is None and not _pending(release):
                release()
            raise
        finally:
            if box is not None:
                self.open_sessions -= 1
                await box.aclose()
                release()

    async def _open(self, login: str, address: str) -> Mailbox:
        s = self.settings
        loop = asyncio.get_running_loop()

        # The login thread may outlive the call's patience: with a longer socket timeout it
        # still learns why (Dovecot answers a refused login after auth_failure_delay, 2 s)
        # and logs it; the call itself waits only settings.timeout.
        patient = replace(s, timeout=max(s.timeout, LOGIN_SOCKET_TIMEOUT))

        def opened() -> Mailbox:
            conn = connect_as(patient, login, self._password)
            try:
                conn.sock.settimeout(s.timeout)
                return Mailbox(conn, s, login=login, address=address, key=self._key,
                               copies=self.trash_copies)
            except BaseException:
                conn.shutdown()
                raise

        future = loop.run_in_executor(self._pool, opened)
        try:
            return await asyncio.wait_for(asyncio.shield(future), s.timeout)
        except TimeoutError:
            future.add_done_callback(_close_late)
            raise _StillOpening(future, _logged(MailboxUnavailable(
                "timeout", f"IMAP server {s.where} did not let {login!r} in within "
                f"{s.timeout} s (timeout)"))) from None
        except asyncio.CancelledError:
            future.add_done_callback(_close_late)
            raise _StillOpening(future, asyncio.CancelledError()) from None
        except ImapLoginError as exc:
            raise _logged(MailboxUnavailable(exc.kind, str(exc))) from None
        except (OSError, imaplib.IMAP4.error) as exc:
            raise _logged(MailboxUnavailable("unreachable", f"IMAP server {s.where} failed "
                          f"after the login as {login!r}: {describe(exc)}")) from None

    async def aclose(self) -> None:
        """At shutdown: no new session; threads of closed sessions are not waited for."""
        self._pool.shutdown(wait=False, cancel_futures=True)


LOGIN_SOCKET_TIMEOUT = 10.0
"""Seconds the login thread waits on the socket, beyond the call's own bound."""


class _StillOpening(Exception):
    """The call stopped waiting while the login thread goes on (see MailStore.session)."""

    def __init__(self, future: asyncio.Future, error: BaseException) -> None:
        super().__init__(str(error))
        self.future = future
        self.error = error


class _once:  # a function that runs once
    """`fn` called at most once, however many paths reach it; `deferred` marks that a
    callback will call it later."""

    def __init__(self, fn: Callable[[], None]) -> None:
        self._fn = fn
        self.done = False
        self.deferred = False

    def __call__(self) -> None:
        if not self.done:
            self.done = True
            self._fn()


def _pending(release: _once) -> bool:
    return release.done or release.deferred


def _close_late(future: asyncio.Future) -> None:
    """An opening that ended after its caller gave up: log out what opened, and log what
    failed (Dovecot delays a refused login by auth_failure_delay, 2 s by default, so the
    reason often arrives after the apology)."""
    if future.cancelled():
        return
    exc = future.exception()
    if exc is None:
        box = future.result()
        box.abort()
        box.close()
    elif isinstance(exc, ImapLoginError):
        log.warning("mailbox by phone (after the call gave up waiting): %s", exc)


def _reason_of(exc: BaseException) -> str:
    """The MailboxUnavailable reason `_run` gives the same failure when its caller waits."""
    if isinstance(exc, MailboxUnavailable):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, imaplib.IMAP4.readonly):
        return "folder"
    if isinstance(exc, (OSError, imaplib.IMAP4.abort, ssl.SSLError)):
        return "unreachable"
    return "protocol"


def _logged(exc: MailboxUnavailable) -> MailboxUnavailable:
    log.warning("mailbox by phone: %s", exc)
    return exc


class MailboxSession:
    """The mailbox of one call; operations are serialised and each is time-bounded."""

    def __init__(self, store: MailStore, box: Mailbox, release: Callable[[], None]) -> None:
        self._store = store
        self._box = box
        self._release = release
        """Gives the connection slot back (once): at the end of the call, or as soon as the
        session failed, so a call that reopens after a failure holds one slot, not two."""
        self._lock = asyncio.Lock()
        self._inflight: asyncio.Future | None = None
        self._closed: str | None = None

    @property
    def login(self) -> str:
        return self._box.login

    async def _run(self, what: str, fn: Callable[..., T], *args: Any) -> T:
        await self._lock.acquire()
        handed_over = False
        try:
            if self._closed:
                raise MailboxUnavailable("closed", f"the mailbox session of {self.login!r} "
                                         f"is closed ({self._closed})")
            s = self._store.settings
            loop = asyncio.get_running_loop()
            deadline = loop.time() + s.timeout
            future = loop.run_in_executor(self._store._pool, fn, *args)
            self._inflight = future
            try:
                return await asyncio.wait_for(asyncio.shield(future), s.timeout)
            except asyncio.CancelledError:
                # The caller left (a hang-up, a cut fetch) but the thread still speaks on
                # the connection: the next operation must wait for its answer, or two
                # threads would interleave commands on one socket. The thread stays bounded
                # by the same deadline (from its start), after which the connection is
                # broken under it.
                handed_over = True
                guard = loop.call_later(max(0.0, deadline - loop.time()), self._give_up, future)
                future.add_done_callback(lambda f: self._handed_back(f, guard))
                raise
            except TimeoutError:
                self._fail("timeout")
                raise _logged(MailboxUnavailable("timeout", f"IMAP server {s.where} did not "
                              f"answer {what} for {self.login!r} within {s.timeout} s")) from None
            except (MessageUnreadable, MailboxUnavailable) as exc:
                if isinstance(exc, MailboxUnavailable):
                    self._fail(exc.reason)
                    _logged(exc)
                raise
            except imaplib.IMAP4.readonly as exc:
                self._fail("folder")
                raise _logged(MailboxUnavailable("folder", f"IMAP server {s.where}: a folder "
                              f"of {self.login!r} became read-only during {what}: "
                              f"{describe(exc)}")) from None
            except (OSError, imaplib.IMAP4.abort, ssl.SSLError) as exc:
                self._fail("unreachable")
                raise _logged(MailboxUnavailable("unreachable", f"IMAP server {s.where} failed "
                              f"during {what} for {self.login!r}: {describe(exc)}")) from None
            except imaplib.IMAP4.error as exc:
                self._fail("protocol")
                raise _logged(MailboxUnavailable("protocol", f"IMAP server {s.where} refused "
                              f"{what} for {self.login!r}: {describe(exc)}")) from None
        finally:
            if not handed_over:
                self._lock.release()

    def _handed_back(self, future: asyncio.Future[Any], guard: asyncio.TimerHandle) -> None:
        """The thread of an operation whose caller left has returned. If it failed on the
        connection, the session is not trusted any more, exactly as when its caller waited:
        the next operation is told at once instead of being sent on a dead socket."""
        guard.cancel()
        exc = None if future.cancelled() else future.exception()
        if exc is not None:
            log.info("IMAP operation for %r whose caller had left ended with %s",
                     self.login, describe(exc))
            if not self._closed and not isinstance(exc, MessageUnreadable):
                self._fail(_reason_of(exc))
        self._lock.release()

    def _give_up(self, future: asyncio.Future[Any]) -> None:
        """An operation whose caller left is still unanswered after the timeout: break the
        connection so its thread returns and the session's next user is told at once."""
        if not future.done():
            log.warning("IMAP server %s did not answer an operation for %r within %s s after "
                        "the call stopped waiting; the session is closed",
                        self._store.settings.where, self.login, self._store.settings.timeout)
            self._fail("timeout")

    def _fail(self, reason: str) -> None:
        """The connection is not trusted any more: break it so no thread stays blocked, and
        give its slot back once the thread using it has returned."""
        self._closed = reason
        self._box.abort()
        inflight = self._inflight
        if inflight is None or inflight.done():
            self._release()
        else:
            inflight.add_done_callback(lambda _f: self._release())

    async def voice_messages(self) -> list[MessageSummary]:
        """Voicemail proven by mailcall's seal: unseen first, then seen, each oldest first."""
        return await self._run("the voicemail list", self._box.voice_messages)

    async def voice_listing(self, skip: frozenset[int] = frozenset()) -> VoiceMail:
        """The same list, with whether its counts are exact (at most max_listed are listed);
        `skip` (the UIDs earlier pages examined) makes it the next page."""
        return await self._run("the voicemail list", self._box.voice_listing, skip)

    async def unread_mail(self, before: int | None = None) -> UnreadMail:
        """Unseen, undeleted inbox messages, newest first, and how many there are; with
        `before`, the page of those below that UID (the next page, older)."""
        return await self._run("the unread mail list", self._box.unread_mail, before)

    async def audio(self, message: MessageSummary) -> tuple[str, bytes]:
        """(MIME type, octets) of the voice attachment, read without setting \\Seen."""
        return await self._run("the audio fetch", self._box.audio, message)

    async def readable(self, message: MessageSummary, *, language: str | None = None
                       ) -> Readable:
        """The text to read aloud, bounded; `language` is the one of mailcall's own words
        (attachment lines, announcements), by default the message's."""
        return await self._run("the text fetch", self._box.readable, message, language)

    async def mark_seen(self, message: MessageSummary) -> None:
        await self._run("the \\Seen flag", self._box.set_seen, message, True)

    async def mark_unseen(self, message: MessageSummary) -> None:
        await self._run("the \\Seen flag", self._box.set_seen, message, False)

    async def mark_answered(self, message: MessageSummary) -> bool:
        """\\Answered on a message replied to; False (one log line saying which right to
        add, where) when the server does not keep it: the reply itself was sent."""
        kept = await self._run("the \\Answered flag", self._box.set_answered, message)
        if not kept:
            log.warning("IMAP server %s did not keep \\Answered on message %s of %r for %r: "
                        "the master user %r lacks the \"w\" right there. Add \"w\" to the "
                        "INBOX and Voicemail lines of mailcall-phone in /etc/dovecot/mailcall.acl "
                        "(contrib/dovecot/92-mailcall-phone.conf, docs/mailstore.md); the reply "
                        "was sent", self._store.settings.where, message.uid, message.folder,
                        self.login, self._store.settings.master_user)
        return kept

    async def move_to_trash(self, message: MessageSummary) -> None:
        """Into Trash (UID MOVE, else COPY + \\Deleted); never an EXPUNGE."""
        await self._run("the move to Trash", self._box.move_to_trash, message)

    async def aclose(self) -> None:
        """Log out, after the operation in flight (if any) has finished or been broken."""
        inflight = self._inflight
        timeout = self._store.settings.timeout
        if inflight is not None and not inflight.done():
            done, _ = await asyncio.wait({inflight}, timeout=timeout)
            if not done:
                self._box.abort()
        self._closed = self._closed or "logged out"
        future: Future | asyncio.Future = asyncio.get_running_loop().run_in_executor(
            self._store._pool, self._box.close)
        with contextlib.suppress(TimeoutError, Exception):
            await asyncio.wait_for(asyncio.shield(future), timeout)
        if not future.done():
            self._box.abort()
