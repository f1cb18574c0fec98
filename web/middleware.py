"""Every request's frame: the session and language, CSRF before any POST, security headers.

The CSRF token of the session is checked in constant time before a POST reaches
its handler, so that no handler can forget it; a refused POST saves nothing.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from mailcall.core.policy.model import Policy
from mailcall.core.policy.value_checks import LANGUAGES
from mailcall.web.context import CTX, FORM, SESSION, WORDS, WebContext, message
from mailcall.web.i18n import Words, negotiate, user_language
from mailcall.web.sessions import Session

log = logging.getLogger("mailcall.web")

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def client_address(request: web.Request, ctx: WebContext) -> str:
    """The browser's address: the peer's, or our own proxy's X-Forwarded-For (last entry)."""
    peer = request.remote or "?"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and peer in ctx.settings.trusted_proxies:
        last = forwarded.split(",")[-1].strip()  # the address our own proxy saw
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer
    return peer


def _language(request: web.Request, session: Session | None, policy: Policy) -> str:
    chosen = request.cookies.get("lang")
    if request.query.get("lang") in LANGUAGES:
        chosen = request.query["lang"]
    if chosen in LANGUAGES:
        return chosen
    if session and session.user in policy.users:
        return user_language(policy.users[session.user].language, policy.organisation.language)
    return negotiate(request.headers.get("Accept-Language"), policy.organisation.language)


@web.middleware
async def middleware(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    session = ctx.sessions.get(request.cookies.get(ctx.cookie))
    request[SESSION] = session
    request[WORDS] = Words(_language(request, session, ctx.runtime.policy))
    try:
        if request.method == "POST":
            form = await request.post()
            request[FORM] = form
            token = form.get("csrf")
            if session is None or not session.csrf_ok(token if isinstance(token, str) else None):
                response: web.StreamResponse = message(
                    request, "error.csrf", 403,
                    back="/login" if session is None or session.user is None else "/")
            else:
                response = await handler(request)
        else:
            response = await handler(request)
    except web.HTTPException as exc:
        _finish(request, ctx, exc)
        raise
    except Exception:
        log.exception("web: %s %s failed", request.method, request.path)
        response = message(request, "error.page", 500)
    _finish(request, ctx, response)
    return response


def _finish(request: web.Request, ctx: WebContext, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.query.get("lang") in LANGUAGES:
        response.set_cookie("lang", request.query["lang"], path="/", httponly=True,
                            samesite="Strict", secure=ctx.settings.secure_cookies,
                            max_age=365 * 86400)


def set_session_cookie(response: web.StreamResponse, ctx: WebContext, session: Session) -> None:
    response.set_cookie(ctx.cookie, session.id, path="/", httponly=True, samesite="Strict",
                        secure=ctx.settings.secure_cookies)


def drop_session_cookie(response: web.StreamResponse, ctx: WebContext) -> None:
    response.del_cookie(ctx.cookie, path="/", secure=ctx.settings.secure_cookies,
                        httponly=True, samesite="Strict")
