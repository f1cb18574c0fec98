"""The user's own page: the call plan, the absence, the profile and the settings form.

Every handler takes the user from the session, never from the form. A refusal of
the store is shown next to its field in the page's language (:mod:`.refusals`),
with what the user typed kept in the form, and nothing saved.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from aiohttp import web

from mailcall.core.policy.model import Policy, User
from mailcall.userstore.effective import effective_settings
from mailcall.userstore.errors import RefinementRefused, StoreError
from mailcall.userstore.fields import check_absence_backup
from mailcall.userstore.overlay import decision_policy, overlay_of
from mailcall.userstore.records import Refinements
from mailcall.userstore.refined_view import refined_policy
from mailcall.userstore.service import UserStore
from mailcall.web import wording
from mailcall.web.client_vacation import client_notice
from mailcall.web.context import (
    CTX,
    FORM,
    SESSION,
    WORDS,
    WebContext,
    current_user,
    flash,
    fmt_of,
    render,
)
from mailcall.web.i18n import Words
from mailcall.web.plan import current_plan, display_name, plan_sentence
from mailcall.web.refusals import translate
from mailcall.web.settings_form import controls

log = logging.getLogger("mailcall.web")
MAX_LISTED_BACKUPS = 300
"""Above this many possible backups the absence form asks for an id instead of a list."""
Errors = dict[str, list[str]]


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


def _reader(store: UserStore) -> Callable[[str], Any]:
    def read(uid: str) -> Any:
        try:
            return store.backend.read(uid)
        except StoreError:
            return None  # that user gets the policy's values, as the router would
    return read


def read_refinements(ctx: WebContext, user: User) -> Any:
    """The user's refinements, in the store's thread (None: the store cannot be read)."""
    store = ctx.store
    if store is None:
        return None
    try:
        return store.refinements(user.id)
    except StoreError as exc:
        ctx.store_problem = str(exc)
        log.error("web: the user store cannot be read: %s", exc)
        return None


def page_data(ctx: WebContext, policy: Policy, view: Policy | None, user: User, t: Words,
              refinements: Any, wanted: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What the page shows, from one read of the store (`refinements`).

    `view` is the policy as the running router refines it (the user-store service's
    overlay); without one, the page refines it from its own reads of the store.
    """
    store = ctx.store
    if view is None:
        view = (refined_policy(policy, _reader(store)) if store is not None and
                refinements is not None else policy)
    eff = effective_settings(policy, user.id, refinements)
    now = ctx.runtime.now()
    fmt = fmt_of(policy)
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
    shown, pin = controls(policy, eff, refinements, user.id, t, fmt, wanted)
    return {"user": user, "profile": user.profile,
            "features": wording.features(policy, eff, t),
            "controls": shown, "pin": pin,
            "sentence": sentence, "absences": absences,
            "backup_allowed": allowed, "backups": choices}


def router_view(ctx: WebContext, policy: Policy) -> Policy | None:
    """The policy as the router obeys it now (the policy alone if the store is unreadable)."""
    overlay = overlay_of(ctx.runtime)
    if overlay is None:
        return None
    overlay.refresh(force=True)
    return overlay.policy(policy)


async def refinements_of(ctx: WebContext, user: User) -> Refinements | None:
    """The user's refinements, read in the store's thread (docs/web.md, "Speed", says
    why not from the user-store service's index)."""
    result: Refinements | None = await ctx.in_store(read_refinements, ctx, user)
    return result


async def home(request: web.Request, *, errors: Errors | None = None,
               values: dict[str, str] | None = None, wanted: Mapping[str, Any] | None = None,
               status: int = 200, store_down: bool = False) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = current_user(request)
    await ctx.reopen()
    policy = ctx.runtime.policy
    view = router_view(ctx, policy)
    refinements = await refinements_of(ctx, user)
    data = page_data(ctx, policy, view, user, request[WORDS], refinements, wanted)
    data["client"] = client_notice(policy, decision_policy(ctx.runtime), user.id,
                                   ctx.runtime.now(), request[SESSION], request[WORDS])
    errors = errors or {}
    return render(request, "home.html", status=status, errors=errors, values=values or {},
                  store_down=store_down,
                  # Opened but unreadable now (locked, damaged): no form that would fail.
                  readonly=refinements is None,
                  absence_errors=any(k.startswith("absence") for k in errors),
                  setting_errors=any(not k.startswith("absence") and k != "pin"
                                     for k in errors), **data)


def problems(exc: RefinementRefused, lang: str, policy: Policy | None = None) -> Errors:
    """The store's refusal as messages by field, in the page's language."""
    out: Errors = {}
    for p in exc.problems:
        out.setdefault(p.field, []).append(translate(p, lang, policy))
    return out


async def set_absence(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = current_user(request)
    form = request[FORM]
    t: Words = request[WORDS]
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
        errors = {"absence.until": [t("absence.until_missing")]}
        return await home(request, errors=errors, values=values, status=400)
    try:
        await ctx.in_store(write)
    except RefinementRefused as exc:
        return await home(request, errors=problems(exc, t.lang, policy), values=values, status=400)
    except StoreError as exc:
        log.error("web: %s's absence was not saved: %s", user.id, exc)
        return await home(request, errors={"absence": [t("refused.store_down")]},
                          values=values, status=503, store_down=True)
    log.info("web: %s set an absence until %s", user.id, values["until"])
    flash(request, "absence.saved")
    raise web.HTTPSeeOther("/")


async def clear_absence(request: web.Request) -> web.StreamResponse:
    ctx: WebContext = request.app[CTX]
    user = current_user(request)
    t: Words = request[WORDS]
    raw = str(request[FORM].get("id", ""))
    if ctx.store is None or not raw.isdigit():
        return await home(request, status=400 if ctx.store else 503)
    store, policy = ctx.store, ctx.runtime.policy
    try:
        await ctx.in_store(lambda: store.clear_absences(policy, user.id, [int(raw)],
                                                        actor=user.id, origin="web"))
    except RefinementRefused as exc:
        return await home(request, errors=problems(exc, t.lang, policy), status=400)
    except StoreError as exc:
        log.error("web: %s's absence was not removed: %s", user.id, exc)
        return await home(request, errors={"absence": [t("refused.store_down")]}, status=503,
                          store_down=True)
    flash(request, "absence.cleared")
    raise web.HTTPSeeOther("/")
