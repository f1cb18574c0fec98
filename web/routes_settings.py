"""Changing one's own settings: the settings form, putting IT's value back, the phone PIN.

The form's values go to :meth:`UserStore.set` in one change: the store checks
every value against the policy (the one ceiling check) inside its write, and a
single refusal saves nothing. The PIN is hashed here (scrypt, as ``mailcall user
set --pin``) and only the hash leaves this module; it is never logged.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from mailcall.core.policy.pins import hash_pin
from mailcall.userstore.effective import effective_settings
from mailcall.userstore.errors import RefinementRefused, StoreError
from mailcall.userstore.fields import FIELDS
from mailcall.web.context import CTX, FORM, WORDS, WebContext, current_user, flash, fmt_of
from mailcall.web.i18n import Words
from mailcall.web.routes_home import home, problems, read_refinements
from mailcall.web.settings_form import FormProblem, changes, controls, read_form

log = logging.getLogger("mailcall.web")


async def _write(request: web.Request, what: str, write: Any, *, wanted: Any = None
                 ) -> web.StreamResponse | None:
    """Run `write` in the store's thread; the page with the refusal, or None when saved."""
    ctx: WebContext = request.app[CTX]
    t: Words = request[WORDS]
    try:
        await ctx.in_store(write)
    except RefinementRefused as exc:
        return await home(request, errors=problems(exc, t.lang, ctx.runtime.policy),
                          wanted=wanted, status=400)
    except StoreError as exc:
        log.error("web: %s of %s not saved: %s", what, current_user(request).id, exc)
        return await home(request, errors={"settings": [t("refused.store_down")]},
                          wanted=wanted, status=503)
    return None


async def set_settings(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = current_user(request)
    t: Words = request[WORDS]
    if ctx.store is None:
        return await home(request, status=503)
    store, policy = ctx.store, ctx.runtime.policy
    refinements = await ctx.in_store(read_refinements, ctx, user)
    eff = effective_settings(policy, user.id, refinements)
    shown, _ = controls(policy, eff, refinements, user.id, t, fmt_of(policy))
    try:
        wanted = read_form(shown, request[FORM])
    except FormProblem as exc:
        return await home(request, errors={exc.field: [t(exc.key)]}, status=400)
    wished = changes(eff, wanted)
    if not wished:
        flash(request, "settings.unchanged")
        raise web.HTTPSeeOther("/#choices-h")

    def write() -> None:
        store.set(policy, user.id, wished, actor=user.id, origin="web")

    refused = await _write(request, "settings", write, wanted=wanted)
    if refused is not None:
        return refused
    log.info("web: %s changed %s", user.id, ", ".join(sorted(wished)))
    flash(request, "settings.saved")
    raise web.HTTPSeeOther("/#choices-h")


async def clear_setting(request: web.Request) -> web.StreamResponse:
    """Forget one of the user's own choices: IT's value (profile, policy file) applies again."""
    ctx: WebContext = request.app[CTX]
    user = current_user(request)
    name = str(request[FORM].get("field", ""))
    if ctx.store is None or name not in FIELDS or name == "pin":
        return await home(request, status=400 if ctx.store else 503)
    store, policy = ctx.store, ctx.runtime.policy
    refused = await _write(request, "a reset", lambda: store.clear(
        policy, user.id, [name], actor=user.id, origin="web"))
    if refused is not None:
        return refused
    log.info("web: %s put IT's value of %s back", user.id, name)
    flash(request, "settings.reset")
    raise web.HTTPSeeOther("/#choices-h")


async def set_pin(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = current_user(request)
    t: Words = request[WORDS]
    form = request[FORM]
    pin, again = str(form.get("pin", "")), str(form.get("pin2", ""))
    if ctx.store is None:
        return await home(request, status=503)
    if pin != again:
        return await home(request, errors={"pin": [t("pin.differ")]}, status=400)
    try:  # scrypt: off the event loop, which serves every other page meanwhile
        hashed = await asyncio.get_running_loop().run_in_executor(None, hash_pin, pin)
    except ValueError:
        return await home(request, errors={"pin": [t("pin.format")]}, status=400)
    finally:
        del pin, again  # not kept past the hash, not even in this frame
    store, policy = ctx.store, ctx.runtime.policy
    refused = await _write(request, "the PIN", lambda: store.set(
        policy, user.id, {"pin": hashed}, actor=user.id, origin="web"))
    if refused is not None:
        return refused
    log.info("web: %s changed their phone PIN", user.id)
    flash(request, "pin.saved")
    raise web.HTTPSeeOther("/#pin-h")
