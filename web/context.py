"""What every handler shares: the service's context, the request's keys, rendering a page.

Blocking work (SQLite, the IMAP LOGIN) runs in thread pools: one thread for the
store (its connection belongs to one thread), a bounded pool for IMAP logins.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from mailcall.agi.pin_guard import PinGuard
from mailcall.core.host.collect import call_rules
from mailcall.core.policy.model import Policy, User
from mailcall.imap.user_login import check_password
from mailcall.userstore.errors import StoreError
from mailcall.userstore.service import UserStore
from mailcall.web.config import WebSettings
from mailcall.web.i18n import Words
from mailcall.web.sessions import Session, Sessions

log = logging.getLogger("mailcall.web")
CTX: web.AppKey[WebContext] = web.AppKey("ctx")
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")
WORDS: web.RequestKey[Words] = web.RequestKey("words")
FORM: web.RequestKey[Any] = web.RequestKey("form")
HERE = Path(__file__).parent
LOGIN_FAILURES, LOGIN_WINDOW, LOGIN_LOCKOUT = 5, 15 * 60.0, 15 * 60.0
ADDRESS_FAILURES = 30
"""Failed logins from one address (any accounts) before that address is locked out."""
REOPEN_AFTER = 5.0
"""Seconds between two attempts to open a store that could not be opened."""


@dataclass
class WebContext:
    """Everything the handlers share; one per running service."""

    runtime: Any
    settings: WebSettings
    store_pool: ThreadPoolExecutor
    imap_pool: ThreadPoolExecutor
    store: UserStore | None = None
    store_problem: str | None = None
    open_store: Callable[[], UserStore] | None = None
    tried_at: float = field(default_factory=time.monotonic)
    sessions: Sessions = field(init=False)
    login_guard: PinGuard = field(init=False)
    address_guard: PinGuard = field(init=False)
    rules: Any = None
    check: Callable[..., bool] = check_password

    def __post_init__(self) -> None:
        self.sessions = Sessions(idle=self.settings.session_idle,
                                 maximum=self.settings.session_max)
        self.login_guard = PinGuard(max_failures=LOGIN_FAILURES, window=LOGIN_WINDOW,
                                    lockout=LOGIN_LOCKOUT)
        self.address_guard = PinGuard(max_failures=ADDRESS_FAILURES, window=LOGIN_WINDOW,
                                      lockout=LOGIN_LOCKOUT)
        self.rules = call_rules(self.runtime.pm) or None

    @property
    def cookie(self) -> str:
        # __Host- cookies must be Secure, Path=/ and without Domain: browsers enforce it.
        return "__Host-mailcall" if self.settings.secure_cookies else "mailcall"

    async def in_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.store_pool, fn, *args)

    async def reopen(self) -> None:
        """Try again, at most every REOPEN_AFTER s, a store that could not be opened."""
        now = time.monotonic()
        if self.store is None and self.open_store is not None and \
                now - self.tried_at > REOPEN_AFTER:
            self.tried_at = now
            try:
                self.store = await self.in_store(self.open_store)
                self.store_problem = None
                log.info("web: the user store is usable again: changes are accepted")
            except StoreError as exc:
                self.store_problem = str(exc)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its name: outside text is always escaped
    undefined=jinja2.StrictUndefined,
    # The templates are files of the installed package: not stat()ed again at each page.
    auto_reload=False,
    trim_blocks=True, lstrip_blocks=True)


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    ctx: WebContext = request.app[CTX]
    session: Session | None = request.get(SESSION)
    t: Words = request[WORDS]
    admin = bool(session and ctx.settings.is_admin(session.user, ctx.runtime.policy))
    flash = list(session.flash) if session else []
    if session:
        session.flash.clear()
    # A page may know more (the store opened but its read just failed): it says so.
    readonly = values.pop("readonly", False) or ctx.store is None
    html = _env.get_template(template).render(
        t=t, lang=t.lang, session=session, admin=admin, flash=flash,
        csrf=session.csrf if session else "", readonly=readonly, **values)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def message(request: web.Request, key: str, status: int, back: str = "/") -> web.Response:
    return render(request, "message.html", status=status, message=request[WORDS](key),
                  back=back)


def current_user(request: web.Request) -> User:
    """The logged-in user, from the session only (never from the form); else to /login."""
    session: Session | None = request[SESSION]
    policy: Policy = request.app[CTX].runtime.policy
    if session is None or session.user is None or session.user not in policy.users:
        raise web.HTTPSeeOther("/login")
    return policy.users[session.user]


def fmt_of(policy: Policy) -> Callable[[datetime], str]:
    return lambda moment: f"{policy.local(moment):%Y-%m-%d %H:%M}"


def flash(request: web.Request, key: str) -> None:
    session = request[SESSION]
    if session is not None:
        session.flash.append(("ok", key))
