"""The page's HTTP application: which URL each handler serves.

aiohttp because ``mailcall serve`` already runs one asyncio loop: its AppRunner
and TCPSite start and stop inside that loop (the ``web`` service), with no
second server process. The handlers live in modules named for what they serve:
:mod:`.routes_login` (login, logout), :mod:`.routes_home` (the user's page and
absence), :mod:`.routes_settings` (the settings form, the PIN),
:mod:`.routes_admin` (IT's view); :mod:`.middleware` frames every request
(session, language, CSRF, headers) and :mod:`.context` holds what they share.
"""

from __future__ import annotations

from aiohttp import web

from mailcall.web import routes_admin, routes_home, routes_login, routes_settings
from mailcall.web.context import CTX, HERE, WebContext
from mailcall.web.middleware import middleware
from mailcall.web.routes_login import DECOY_LOGIN, LOGIN_FAILURES

__all__ = ["DECOY_LOGIN", "LOGIN_FAILURES", "MAX_BODY", "WebContext", "make_app"]
MAX_BODY = 64 * 1024


def make_app(ctx: WebContext) -> web.Application:
    app = web.Application(middlewares=[middleware], client_max_size=MAX_BODY)
    app[CTX] = ctx
    app.router.add_get("/", routes_home.home)
    app.router.add_get("/login", routes_login.login_form)
    app.router.add_post("/login", routes_login.login)
    app.router.add_post("/logout", routes_login.logout)
    app.router.add_post("/absence", routes_home.set_absence)
    app.router.add_post("/absence/clear", routes_home.clear_absence)
    app.router.add_post("/settings", routes_settings.set_settings)
    app.router.add_post("/settings/clear", routes_settings.clear_setting)
    app.router.add_post("/pin", routes_settings.set_pin)
    app.router.add_get("/admin", routes_admin.admin)
    app.router.add_post("/admin/clear", routes_admin.admin_clear)
    app.router.add_static("/static", HERE / "static", show_index=False)
    return app
