"""Logging in and out: the mail password checked by Dovecot, limits like the phone PIN.

The typed name must be a user of the policy; the IMAP LOGIN is made with the
policy's own address for that user, so a typed ``user*master`` never reaches
Dovecot. A name that is nobody costs a decoy login as slow as a wrong password.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
from typing import Any

from aiohttp import web

from mailcall.core.policy.model import Policy, User
from mailcall.imap import ImapLoginError
from mailcall.web.client_vacation import read_at_login
from mailcall.web.context import (
    ADDRESS_FAILURES,
    CTX,
    FORM,
    LOGIN_FAILURES,
    SESSION,
    WORDS,
    WebContext,
    render,
)
from mailcall.web.i18n import Words
from mailcall.web.middleware import client_address, drop_session_cookie, set_session_cookie
from mailcall.web.sessions import Session

__all__ = ["ADDRESS_FAILURES", "DECOY_LOGIN", "LOGIN_FAILURES", "login", "login_form", "logout"]
log = logging.getLogger("mailcall.web")
DECOY_LOGIN = "mailcall-no-such-user"
"""Asked of the IMAP server for a login that names nobody, so it fails as slowly as a
wrong password does (Dovecot delays failures) and tells nothing about who exists."""


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


async def login_form(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    session: Session | None = request[SESSION]
    if session is not None and session.user is not None:
        raise web.HTTPSeeOther("/")
    fresh = session is None
    if fresh:
        session = ctx.sessions.new()
        request[SESSION] = session
    response = render(request, "login.html", login="", error=None)
    if fresh:
        set_session_cookie(response, ctx, session)
    return response


def _find_user(policy: Policy, login: str) -> User | None:
    text = login.strip()
    if "@" in text:
        uid = policy.by_email.get(text.lower())
        return policy.users.get(uid) if uid else None
    return policy.users.get(text)


async def login(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    t: Words = request[WORDS]
    form = request[FORM]
    typed = str(form.get("login", ""))[:320]
    password = str(form.get("password", ""))
    account = "login:" + typed.strip().lower()
    address = "address:" + client_address(request, ctx)

    def refuse(key: str, status: int, **values: Any) -> web.Response:
        return render(request, "login.html", status=status, login=typed, error=t(key, **values))

    for guard, key in ((ctx.address_guard, address), (ctx.login_guard, account)):
        wait = guard.locked_for(key)
        if wait > 0 or not guard.begin(key):
            if guard is ctx.login_guard:
                ctx.address_guard.abandoned(address)
            log.warning("web: login refused for %r from %s: too many failures (locked %.0f s)",
                        typed, address[8:], max(wait, 1))
            return refuse("login.locked", 429, minutes=max(1, round(max(wait, 60) / 60)))
    policy: Policy = ctx.runtime.policy
    user = _find_user(policy, typed)
    imap = ctx.settings.imap
    name = DECOY_LOGIN if user is None else (user.email if imap.login == "email" else user.id)
    sieve = ctx.settings.managesieve.resolved(imap)
    read = sieve.enabled and user is not None

    def check_then_read(password: str) -> tuple[bool, Any]:
        # One job: the password is not handed to another thread or kept for later.
        ok = ctx.check(imap.host, imap.port, name, password, security=imap.security,
                       timeout=imap.timeout, client_ip=_ip(address[8:]))
        scripts = (read_at_login(sieve, user.id, name, password)
                   if ok and read and user is not None else None)
        del password
        return ok, scripts

    loop = asyncio.get_running_loop()
    try:
        ok, scripts = await loop.run_in_executor(
            ctx.imap_pool, functools.partial(check_then_read, password))
    except ImapLoginError as exc:
        ctx.login_guard.abandoned(account)
        ctx.address_guard.abandoned(address)
        log.error("web: cannot check %r's password: %s (docs/web.md, [imap] of %s)",
                  typed, exc, ctx.settings.path)
        return refuse("login.unreachable", 503)
    except BaseException:
        # Whatever else went wrong, the guess under way is not left counted forever.
        ctx.login_guard.abandoned(account)
        ctx.address_guard.abandoned(address)
        raise
    finally:
        del password  # not kept past the check, not even in this frame
    if not ok or user is None:
        locked = ctx.login_guard.failed(account)
        ctx.address_guard.failed(address)
        log.warning("web: failed login for %r from %s%s", typed, address[8:],
                    " (now locked out)" if locked else "")
        return refuse("login.failed", 401)
    ctx.login_guard.succeeded(account)
    ctx.address_guard.abandoned(address)  # success does not wipe an address's failures
    session = ctx.sessions.login(request[SESSION], user.id)
    if read:
        session.client, session.client_read_at = scripts, ctx.runtime.now()
    log.info("web: %s logged in from %s", user.id, address[8:])
    response = web.HTTPSeeOther("/")
    set_session_cookie(response, ctx, session)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    session: Session | None = request[SESSION]
    if session is not None:
        ctx.sessions.drop(session)
    response = web.HTTPSeeOther("/login")
    drop_session_cookie(response, ctx)
    raise response
