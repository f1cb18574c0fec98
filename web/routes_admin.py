"""IT's view: who has settings of their own, any user's refinements, clearing them, the audit.

For the admins of ``web.toml`` only, checked on every request; a cleared user's
changes are audited with actor ``it:<admin>``.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from mailcall.core.policy.model import Policy, User
from mailcall.userstore.overlay import overlay_of
from mailcall.userstore.sqlite_store import PIN_SHOWN  # a PIN hash is never shown
from mailcall.web.context import (
    CTX,
    FORM,
    WebContext,
    current_user,
    flash,
    fmt_of,
    message,
    render,
)

log = logging.getLogger("mailcall.web")
ADMIN_LISTED = 200
"""Users with own settings listed on IT's view (the others are found by id)."""


def _admin(request: web.Request) -> User | None:
    user = current_user(request)
    ctx: WebContext = request.app[CTX]
    return user if ctx.settings.is_admin(user.id, ctx.runtime.policy) else None


async def admin(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    if _admin(request) is None:
        return message(request, "admin.forbidden", 403)
    await ctx.reopen()
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
    fmt = fmt_of(policy)
    shown = None
    if refined is not None:
        shown = {"id": wanted, "name": policy.users[wanted].name,
                 "values": [(k, PIN_SHOWN if k == "pin" else v.value, fmt(v.stamp.at),
                             v.stamp.origin, v.stamp.actor)
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
    it = _admin(request)
    if it is None:
        return message(request, "admin.forbidden", 403)
    target = str(request[FORM].get("user", ""))
    policy = ctx.runtime.policy
    if ctx.store is None or target not in policy.users:
        raise web.HTTPSeeOther("/admin")
    store = ctx.store
    await ctx.in_store(lambda: store.clear(policy, target, None, actor=f"it:{it.id}",
                                           origin="web"))
    log.info("web: %s cleared every own setting of %s", it.id, target)
    flash(request, "admin.cleared")
    raise web.HTTPSeeOther(f"/admin?user={target}")
