"""The page's HTTP side: routes, sessions, CSRF, login limits, security headers.

aiohttp because ``mailcall serve`` already runs one asyncio loop: its AppRunner
and TCPSite start and stop inside that loop (the ``web`` service), with no
second server process. Blocking work (SQLite, the IMAP LOGIN) runs in thread
pools: one thread for the store (its connection belongs to one thread), a
bounded pool for IMAP logins.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from mailcall.agi.pin_guard import PinGuard
from mailcall.core.decisions.routing import collect_rules
from mailcall.core.policy.model import Policy, User
from mailcall.imap import ImapLoginError
from mailcall.imap.user_login import check_password
from mailcall.userstore.effective import effective_settings
from mailcall.userstore.errors import RefinementRefused, StoreError
from mailcall.userstore.fields import check_absence_backup
from mailcall.userstore.overlay import overlay_of, refined_policy
from mailcall.userstore.service import UserStore
from mailcall.web import wording
from mailcall.web.config import WebSettings
from mailcall.web.i18n import Words, negotiate, user_language
from mailcall.web.plan import current_plan, display_name, plan_sentence
from mailcall.web.sessions import Session, Sessions

log = logging.getLogger("mailcall.web")
CTX: web.AppKey[WebContext] = web.AppKey("ctx")
SESSION: web.RequestKey[Session | None] = web.RequestKey("session")
WORDS: web.RequestKey[Words] = web.RequestKey("words")
FORM: web.RequestKey[Any] = web.RequestKey("form")
HERE = Path(__file__).parent
MAX_BODY = 64 * 1024
MAX_LISTED_BACKUPS = 300
"""Above this many possible backups the absence form asks for an id instead of a list."""
ADMIN_LISTED = 200
"""Users with own settings listed on IT's view (the others are found by id)."""
LOGIN_FAILURES, LOGIN_WINDOW, LOGIN_LOCKOUT = 5, 15 * 60.0, 15 * 60.0
ADDRESS_FAILURES = 30
"""Failed logins from one address (any accounts) before that address is locked out."""
DECOY_LOGIN = "mailcall-no-such-user"
"""Asked of the IMAP server for a login that names nobody, so it fails as slowly as a
wrong password does (Dovecot delays failures) and tells nothing about who exists."""

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self'; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


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
        results = self.runtime.pm.hook.mailcall_call_rules()
        self.rules = collect_rules(results) or None

    @property
    def cookie(self) -> str:
        # __Host- cookies must be Secure, Path=/ and without Domain: browsers enforce it.
        return "__Host-mailcall" if self.settings.secure_cookies else "mailcall"

    async def in_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.store_pool, fn, *args)


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,  # every template, whatever its name: outside text is always escaped
    undefined=jinja2.StrictUndefined,
    trim_blocks=True, lstrip_blocks=True)


def render(request: web.Request, template: str, status: int = 200, **values: Any) -> web.Response:
    ctx: WebContext = request.app[CTX]
    session: Session | None = request.get(SESSION)
    t: Words = request[WORDS]
    admin = bool(session and session.user in ctx.settings.admins)
    flash = list(session.flash) if session else []
    if session:
        session.flash.clear()
    html = _env.get_template(template).render(
        t=t, lang=t.lang, session=session, admin=admin, flash=flash,
        csrf=session.csrf if session else "", readonly=ctx.store is None,
        **values)
    return web.Response(text=html, content_type="text/html", charset="utf-8", status=status)


def _client(request: web.Request, ctx: WebContext) -> str:
    peer = request.remote or "?"
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded and peer in ctx.settings.trusted_proxies:
        last = forwarded.split(",")[-1].strip()  # the address our own proxy saw
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            return peer
    return peer


def _ip(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@web.middleware
async def middleware(request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                     ) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    session = ctx.sessions.get(request.cookies.get(ctx.cookie))
    request[SESSION] = session
    policy: Policy = ctx.runtime.policy
    chosen = request.cookies.get("lang")
    if request.query.get("lang") in ("en", "fr"):
        chosen = request.query["lang"]
    if chosen in ("en", "fr"):
        lang = chosen
    elif session and session.user in policy.users:
        lang = user_language(policy.users[session.user].language, policy.organisation.language)
    else:
        lang = negotiate(request.headers.get("Accept-Language"), policy.organisation.language)
    request[WORDS] = Words(lang)
    try:
        if request.method == "POST":
            form = await request.post()
            request[FORM] = form
            token = form.get("csrf")
            if session is None or not session.csrf_ok(token if isinstance(token, str) else None):
                response: web.StreamResponse = render(
                    request, "message.html", status=403, message=request[WORDS]("error.csrf"),
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
        response = render(request, "message.html", status=500,
                          message=request[WORDS]("error.page"), back="/")
    _finish(request, ctx, response)
    return response


def _finish(request: web.Request, ctx: WebContext, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if request.query.get("lang") in ("en", "fr"):
        response.set_cookie("lang", request.query["lang"], path="/", httponly=True,
                            samesite="Strict", secure=ctx.settings.secure_cookies,
                            max_age=365 * 86400)


def _set_session_cookie(response: web.StreamResponse, ctx: WebContext, session: Session) -> None:
    response.set_cookie(ctx.cookie, session.id, path="/", httponly=True, samesite="Strict",
                        secure=ctx.settings.secure_cookies)


def _user(request: web.Request) -> User:
    session: Session | None = request[SESSION]
    policy: Policy = request.app[CTX].runtime.policy
    if session is None or session.user is None or session.user not in policy.users:
        raise web.HTTPSeeOther("/login")
    return policy.users[session.user]


# -- login ---------------------------------------------------------------
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
        _set_session_cookie(response, ctx, session)
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
    address = "address:" + _client(request, ctx)

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
    loop = asyncio.get_running_loop()
    try:
        ok = await loop.run_in_executor(ctx.imap_pool, functools.partial(
            ctx.check, imap.host, imap.port, name, password, security=imap.security,
            timeout=imap.timeout, client_ip=_ip(address[8:])))
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
    log.info("web: %s logged in from %s", user.id, address[8:])
    response = web.HTTPSeeOther("/")
    _set_session_cookie(response, ctx, session)
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    session: Session | None = request[SESSION]
    if session is not None:
        ctx.sessions.drop(session)
    response = web.HTTPSeeOther("/login")
    response.del_cookie(ctx.cookie, path="/", secure=ctx.settings.secure_cookies,
                        httponly=True, samesite="Strict")
    raise response


# -- the user's page -----------------------------------------------------
def _fmt(policy: Policy) -> Callable[[datetime], str]:
    return lambda moment: f"{policy.local(moment):%Y-%m-%d %H:%M}"


def _backup_choices(policy: Policy, user: User) -> tuple[bool, list[tuple[str, str]] | None]:
    """May the user name a backup, and whom (ref, name); None: too many to list, type an id.

    Whether a backup may be named at all depends on the profile, not on who: the
    first candidate tells. Large directories are never walked on a page view.
    """
    first = next((f"@{g}" for g in policy.groups), None) or next(
        (u for u in policy.users if u != user.id), None)
    if first is None or check_absence_backup(policy, user, first) is not None:
        return False, []
    if len(policy.groups) + len(policy.users) - 1 > MAX_LISTED_BACKUPS:
        return True, None
    refs = [f"@{g}" for g in policy.groups] + [u for u in policy.users if u != user.id]
    own = [r for r in user.backups if r in refs]
    ordered = own + [r for r in refs if r not in own]
    return True, [(r, display_name(policy, r)) for r in ordered
                  if check_absence_backup(policy, user, r) is None]


def _page_data(ctx: WebContext, policy: Policy, view: Policy | None, user: User, t: Words
               ) -> dict[str, Any]:
    """Read the store once (in its thread) and compute what the page shows.

    `view` is the policy as the running router refines it (the user-store service's
    overlay); without one, the page refines it from its own reads of the store.
    """
    store = ctx.store
    refinements = None
    if store is not None:
        try:
            refinements = store.refinements(user.id)
        except StoreError as exc:
            ctx.store_problem = str(exc)
            log.error("web: the user store cannot be read: %s", exc)
    if view is None:
        view = (refined_policy(policy, _reader(store)) if store is not None and
                refinements is not None else policy)
    eff = effective_settings(policy, user.id, refinements)
    now = ctx.runtime.now()
    fmt = _fmt(policy)
    absent = eff.absence_at(now)
    plan = current_plan(view, user.id, now, ctx.rules)
    sentence = plan_sentence(policy, plan, user.id, t, fmt, absent.until if absent else None,
                             closed=not view.is_open(eff.user.schedule, now))
    absences = []
    for a in eff.absences:
        if a.absence.until <= now:
            continue
        text = (t("absence.line_backup", start=fmt(a.absence.start), until=fmt(a.absence.until),
                  backup=display_name(policy, a.absence.backup)) if a.absence.backup
                else t("absence.line", start=fmt(a.absence.start), until=fmt(a.absence.until)))
        absences.append({"id": a.id, "text": text, "message": a.absence.message,
                         "it": a.id is None})
    allowed, choices = _backup_choices(policy, user)
    return {"user": user, "profile": user.profile,
            "features": wording.features(policy, eff, t),
            "rows": wording.settings(policy, eff, refinements, user.id, t, fmt),
            "sentence": sentence, "absences": absences,
            "backup_allowed": allowed, "backups": choices}


def _reader(store: UserStore) -> Callable[[str], Any]:
    def read(uid: str) -> Any:
        try:
            return store.backend.read(uid)
        except StoreError:
            return None  # that user gets the policy's values, as the router would
    return read


REOPEN_AFTER = 5.0
"""Seconds between two attempts to open a store that could not be opened."""


async def _reopen(ctx: WebContext) -> None:
    now = time.monotonic()
    if ctx.store is None and ctx.open_store is not None and now - ctx.tried_at > REOPEN_AFTER:
        ctx.tried_at = now
        try:
            ctx.store = await ctx.in_store(ctx.open_store)
            ctx.store_problem = None
            log.info("web: the user store is usable again: changes are accepted")
        except StoreError as exc:
            ctx.store_problem = str(exc)


async def home(request: web.Request, *, errors: dict[str, list[str]] | None = None,
               values: dict[str, str] | None = None, status: int = 200) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = _user(request)
    await _reopen(ctx)
    policy = ctx.runtime.policy
    overlay = overlay_of(ctx.runtime)
    view = None
    if overlay is not None:  # what the router obeys now (the policy alone if unreadable)
        overlay.refresh(force=True)
        view = overlay.policy(policy)
    data = await ctx.in_store(_page_data, ctx, policy, view, user, request[WORDS])
    return render(request, "home.html", status=status, errors=errors or {},
                  values=values or {}, **data)


def _problems(exc: RefinementRefused) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in exc.problems:
        out.setdefault(p.field, []).append(p.message)
    return out


async def set_absence(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = _user(request)
    form = request[FORM]
    values = {k: str(form.get(k, "")).strip() for k in ("from", "until", "backup", "message")}
    values["message"] = str(form.get("message", ""))
    if ctx.store is None:
        return await home(request, values=values, status=503)
    store = ctx.store
    policy = ctx.runtime.policy

    def write() -> None:
        store.set_absence(policy, user.id, until=values["until"] or "",
                          start=values["from"] or None, backup=values["backup"] or None,
                          message=values["message"] or None, actor=user.id, origin="web")

    if not values["until"]:
        errors = {"absence.until": [request[WORDS]("absence.until_missing")]}
        return await home(request, errors=errors, values=values, status=400)
    try:
        await ctx.in_store(write)
    except RefinementRefused as exc:
        return await home(request, errors=_problems(exc), values=values, status=400)
    except StoreError as exc:
        log.error("web: %s's absence was not saved: %s", user.id, exc)
        return await home(request, errors={"absence": [str(exc)]}, values=values, status=503)
    log.info("web: %s set an absence until %s", user.id, values["until"])
    request[SESSION].flash.append(("ok", "absence.saved"))
    raise web.HTTPSeeOther("/")


async def clear_absence(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = _user(request)
    raw = str(request[FORM].get("id", ""))
    if ctx.store is None or not raw.isdigit():
        return await home(request, status=400 if ctx.store else 503)
    store, policy = ctx.store, ctx.runtime.policy
    try:
        await ctx.in_store(lambda: store.clear_absences(policy, user.id, [int(raw)],
                                                        actor=user.id, origin="web"))
    except RefinementRefused as exc:
        return await home(request, errors=_problems(exc), status=400)
    except StoreError as exc:
        log.error("web: %s's absence was not removed: %s", user.id, exc)
        return await home(request, errors={"absence": [str(exc)]}, status=503)
    request[SESSION].flash.append(("ok", "absence.cleared"))
    raise web.HTTPSeeOther("/")


# -- IT's view -----------------------------------------------------------
def _admin(request: web.Request) -> User:
    user = _user(request)
    if user.id not in request.app[CTX].settings.admins:
        raise web.HTTPForbidden(text="")
    return user


async def admin(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    try:
        _admin(request)
    except web.HTTPForbidden:
        return render(request, "message.html", status=403,
                      message=request[WORDS]("admin.forbidden"), back="/")
    await _reopen(ctx)
    policy: Policy = ctx.runtime.policy
    wanted = request.query.get("user", "").strip()
    store = ctx.store

    def read() -> tuple[list[Any], Any]:
        if store is None:
            return [], None
        entries = store.audit(wanted or None, 200) if (not wanted or wanted in policy.users) \
            else []
        refined = store.refinements(wanted) if wanted in policy.users else None
        return entries, refined

    entries, refined = await ctx.in_store(read)
    fmt = _fmt(policy)
    shown = None
    if refined is not None:
        shown = {"id": wanted, "name": policy.users[wanted].name,
                 "values": [(k, v.value, fmt(v.stamp.at), v.stamp.origin, v.stamp.actor)
                            for k, v in refined.values.items()],
                 "absences": [(a.id, fmt(a.start), fmt(a.until), a.backup, a.message)
                              for a in refined.absences]}
    audit = [{"at": fmt(e.stamp.at), "user": e.user, "field": e.field, "old": e.old,
              "new": e.new, "actor": e.stamp.actor, "origin": e.stamp.origin} for e in entries]
    # Who has refinements at all: the running index knows, without reading the store.
    overlay = overlay_of(ctx.runtime)
    if overlay is not None:
        overlay.refresh(force=True)
    index = overlay.index if overlay is not None else None
    refined_users = sorted(index.users())[:ADMIN_LISTED] if index is not None else None
    return render(request, "admin.html", wanted=wanted, shown=shown, audit=audit,
                  unknown=bool(wanted) and wanted not in policy.users,
                  refined_users=refined_users,
                  refined_count=len(index) if index is not None else 0)


async def admin_clear(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    try:
        it = _admin(request)
    except web.HTTPForbidden:
        return render(request, "message.html", status=403,
                      message=request[WORDS]("admin.forbidden"), back="/")
    target = str(request[FORM].get("user", ""))
    policy = ctx.runtime.policy
    if ctx.store is None or target not in policy.users:
        raise web.HTTPSeeOther("/admin")
    store = ctx.store
    await ctx.in_store(lambda: store.clear(policy, target, None, actor=f"it:{it.id}",
                                           origin="web"))
    log.info("web: %s cleared every own setting of %s", it.id, target)
    request[SESSION].flash.append(("ok", "admin.cleared"))
    raise web.HTTPSeeOther(f"/admin?user={target}")


def make_app(ctx: WebContext) -> web.Application:
    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY)
    app[CTX] = ctx
    app.router.add_get("/", home)
    app.router.add_get("/login", login_form)
    app.router.add_post("/login", login)
    app.router.add_post("/logout", logout)
    app.router.add_post("/absence", set_absence)
    app.router.add_post("/absence/clear", clear_absence)
    app.router.add_get("/admin", admin)
    app.router.add_post("/admin/clear", admin_clear)
    app.router.add_static("/static", HERE / "static", show_index=False)
    return app
