"""Options, 5: the caller sets an absence (last day, backup) or ends the one set.

It is the absence the web page and the CLI set (docs/user-settings.md): saved
in the user store through :meth:`UserStore.set_absence
<mailcall.userstore.service.UserStore.set_absence>` with origin ``phone``, so
it is refused for the same reasons (the backup is checked by
:func:`~mailcall.userstore.fields.check_absence_backup`, the one ceiling
check), and obeyed at once by the phone side (routing to the backup, the
absence greeting regenerated) and the mail side (the Sieve auto-reply), which
read the store through the refined policy.

The date is typed as DDMM: the **last day away**, which is how the absence
greeting and the auto-reply say it ("away until Saturday 12 December",
:func:`~mailcall.core.decisions.absence_text.last_day_away`); it is stored as
the store's dates are, "back on" the next day at 00:00 in the organisation's
time zone. The year is the next one in which that day is today or later.

The dialog is a table (:data:`TABLE`): (step, what was typed or what the
store answered) -> (what is said, next step, whether it costs a try). Only
the last step writes, once everything is typed: a hang-up before it saves
nothing, and the write is one transaction. Without a speech engine the dialog
cannot be explained: the caller hears "not available" and nothing changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from mailcall.agi import prompts
from mailcall.core.policy.model import Absence, Policy, User
from mailcall.core.policy.numbers import find_owner
from mailcall.userstore import by_phone
from mailcall.userstore.errors import RefinementRefused, StoreError
from mailcall.userstore.fields import check_absence_backup

from . import words
from .dialog import Ask, NoSpeech, Tell, Typed, ask, table_step, tell, tell_text

if TYPE_CHECKING:
    from mailcall.userstore.service import UserStore

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

BACKUP_DIGITS = 12


class Step(StrEnum):
    CURRENT = "current"
    """An own absence is set (said first): 1 ends it, * keeps it."""
    UNTIL = "until"
    """The last day away, DDMM."""
    BACKUP = "backup"
    """The backup's extension, or # for nobody."""
    SAVE = "save"
    """Everything typed: the absence is being written."""
    END = "end"
    """The absence set is being removed."""
    DONE = "done"


class Input(StrEnum):
    KEY_1 = "1"
    KEEP = "keep"
    """``*`` or ``#`` at the CURRENT question."""
    OTHER = "other"
    """A key that means nothing here."""
    SILENT = "silent"
    CANCEL = "cancel"
    """``*`` while typing a date or an extension: the caller gives up."""
    DATE = "date"
    FOUR_DIGITS = "four_digits"
    """Not four digits."""
    NOT_A_DATE = "not_a_date"
    """Four digits that are no day of the coming year (3102, 0013, 2902 in 2027)."""
    NOBODY = "nobody"
    """A lone ``#``: no backup."""
    EXTENSION = "extension"
    """An extension (or number) of a user or group of the policy."""
    UNKNOWN = "unknown"
    NOT_ASKED = "not_asked"
    """The profile lets no backup be named (``reroute`` locked or not for absences)."""
    SAVED = "saved"
    BACKUP_REFUSED = "backup_refused"
    OVERLAPS = "overlaps"
    REFUSED = "refused"
    ENDED = "ended"
    FAILED = "failed"
    """The store cannot be used (unreadable, locked): nothing saved."""


TABLE: MappingProxyType[tuple[Step, Input], tuple[tuple[str, ...], Step, bool]] = \
    MappingProxyType({
        (Step.CURRENT, Input.KEY_1): ((), Step.END, False),
        (Step.CURRENT, Input.KEEP): ((), Step.DONE, False),
        (Step.CURRENT, Input.OTHER): (("invalid",), Step.CURRENT, True),
        (Step.CURRENT, Input.SILENT): ((), Step.CURRENT, True),
        (Step.UNTIL, Input.DATE): ((), Step.BACKUP, False),
        (Step.UNTIL, Input.FOUR_DIGITS): (("absence_four_digits",), Step.UNTIL, True),
        (Step.UNTIL, Input.NOT_A_DATE): (("absence_not_a_date",), Step.UNTIL, True),
        (Step.UNTIL, Input.SILENT): ((), Step.UNTIL, True),
        (Step.UNTIL, Input.CANCEL): (("nothing_saved",), Step.DONE, False),
        (Step.BACKUP, Input.NOBODY): ((), Step.SAVE, False),
        (Step.BACKUP, Input.EXTENSION): ((), Step.SAVE, False),
        (Step.BACKUP, Input.NOT_ASKED): (("absence_backup_by_it",), Step.SAVE, False),
        (Step.BACKUP, Input.UNKNOWN): (("not_an_extension",), Step.BACKUP, True),
        (Step.BACKUP, Input.SILENT): ((), Step.BACKUP, True),
        (Step.BACKUP, Input.CANCEL): (("nothing_saved",), Step.DONE, False),
        (Step.SAVE, Input.SAVED): ((), Step.DONE, False),
        (Step.SAVE, Input.BACKUP_REFUSED): (("absence_backup_refused", "nothing_saved"),
                                            Step.DONE, False),
        (Step.SAVE, Input.OVERLAPS): (("absence_overlaps", "nothing_saved"), Step.DONE, False),
        (Step.SAVE, Input.REFUSED): (("nothing_saved",), Step.DONE, False),
        (Step.SAVE, Input.FAILED): (("settings_unavailable",), Step.DONE, False),
        (Step.END, Input.ENDED): (("absence_ended",), Step.DONE, False),
        (Step.END, Input.FAILED): (("settings_unavailable",), Step.DONE, False),
    })
"""Every (step, input) the dialog can meet; tests/phonemenu/test_phone_settings.py walks it."""

QUESTIONS = MappingProxyType({Step.CURRENT: ("absence_end_menu", 1),
                              Step.UNTIL: ("absence_until", 4),
                              Step.BACKUP: ("absence_backup", BACKUP_DIGITS)})


# ------------------------------------------------------------------ what it asks for


@dataclass(frozen=True, slots=True)
class Describe:
    """Say an absence (:func:`words.absence_sentences`): the one set, or the one saved."""

    absence: Absence


@dataclass(frozen=True, slots=True)
class Save:
    last_day: date
    backup: str | None


@dataclass(frozen=True, slots=True)
class End:
    absence_id: int


Out = Tell | Ask | Describe | Save | End


def last_day(digits: str, today: date) -> date | Input:
    """The day DDMM names: this year's if it is today or later, else next year's.

    FOUR_DIGITS or NOT_A_DATE when it names none (no 29 February in the coming year
    is NOT_A_DATE too: an absence is not set years ahead by phone).
    """
    if len(digits) != 4 or not digits.isdigit():
        return Input.FOUR_DIGITS
    day, month = int(digits[:2]), int(digits[2:])
    for year in (today.year, today.year + 1):
        try:
            found = date(year, month, day)
        except ValueError:
            continue
        if found >= today:
            return found
    return Input.NOT_A_DATE


@dataclass
class AbsenceDialog:
    """Sans-I/O. `today` in the organisation's time zone; `find` gives the user id or
    ``@group`` of an extension (None: nobody); `backups` whether the profile lets the
    caller name one at all."""

    today: date
    find: Callable[[str], str | None]
    backups: bool = True
    step: Step = Step.UNTIL
    tries: int = 0
    current: Any = None
    """The own absence set (a stored absence with an ``id``), when there is one."""
    until: date | None = None
    backup: str | None = field(default=None)

    @property
    def done(self) -> bool:
        return self.step is Step.DONE

    def start(self, current: Any = None, described: Absence | None = None) -> list[Out]:
        """`current`: the caller's own absence not over yet (None: none), `described` it
        as the policy reads it (what is said)."""
        self.current, self.tries, self.until, self.backup = current, 0, None, None
        if current is not None:
            self.step = Step.CURRENT
            return [Describe(described or current), self._ask()]
        self.step = Step.UNTIL
        return [self._ask()]

    def typed(self, typed: Typed) -> list[Out]:
        return self._go(self._classify(typed))

    def answered(self, outcome: Input) -> list[Out]:
        """What the store answered to a Save or an End."""
        return self._go(outcome)

    def _classify(self, typed: Typed) -> Input:
        digits = typed.digits
        if typed.silent:
            return Input.SILENT
        if self.step is Step.CURRENT:
            if digits == "1":
                return Input.KEY_1
            return Input.KEEP if digits in ("", "*") else Input.OTHER
        if "*" in digits:
            return Input.CANCEL
        if self.step is Step.UNTIL:
            found = last_day(digits, self.today)
            if isinstance(found, Input):
                return found
            self.until = found
            return Input.DATE
        # BACKUP
        if digits == "":
            self.backup = None
            return Input.NOBODY
        owner = self.find(digits)
        if owner is None:
            return Input.UNKNOWN
        self.backup = owner
        return Input.EXTENSION

    def _go(self, kind: Input) -> list[Out]:
        said, after, self.tries = table_step(TABLE, self.step, kind, self.tries)
        out: list[Out] = [*said]
        if after is None:
            self.step = Step.DONE
            return out
        self.step = after
        if after is Step.BACKUP and not self.backups:
            self.backup = None
            return [*out, *self._go(Input.NOT_ASKED)]
        if after in QUESTIONS:
            out.append(self._ask())
        elif after is Step.SAVE:
            assert self.until is not None
            out.append(Save(self.until, self.backup))
        elif after is Step.END:
            out.append(End(self.current.id))
        return out

    def _ask(self) -> Ask:
        phrase, digits = QUESTIONS[self.step]
        return Ask(phrase, digits)


# ------------------------------------------------------------------ on the call


def backups_possible(policy: Policy, user: User) -> bool:
    """Whether the profile lets `user` name any backup for an absence: it depends on the
    profile, not on who (as the web page asks it), so any other user or group tells."""
    other = next((f"@{g}" for g in policy.groups), None) or next(
        (u for u in policy.users if u != user.id), None)
    return other is not None and check_absence_backup(policy, user, other) is None


def own_absence_ahead(store: UserStore, user_id: str, now: datetime) -> Any:
    """The caller's own absence (the store's) that is not over, the first one if several."""
    ahead = [a for a in store.refinements(user_id).absences if a.until > now]
    return min(ahead, key=lambda a: a.start) if ahead else None


async def set_absence(call: MenuCall) -> None:
    """The whole dialog on the call; returns when it is over (AgiHangup if the caller left)."""
    runtime, user = call.runtime, call.user
    policy = runtime.policy
    now = runtime.now()
    try:
        current = await by_phone.read(
            runtime, lambda store: own_absence_ahead(store, user.id, now), None)
    except StoreError as exc:
        log.error("phone menu: %s's absence cannot be read: %s", user.id, exc)
        await tell(call, "settings_unavailable")
        return
    dialog = AbsenceDialog(today=now.date(), find=lambda digits: find_owner(policy, digits),
                           backups=backups_possible(policy, user))
    described = None
    if current is not None:
        described = Absence(user=user.id, start=current.start, until=current.until,
                            backup=current.backup, message=current.message)
    out = dialog.start(current, described)
    try:
        while out:
            follow: list[Out] = []
            for item in out:
                if isinstance(item, Tell):
                    await tell(call, item.phrase)
                elif isinstance(item, Describe):
                    await tell_text(call, words.absence_sentences(
                        policy, item.absence, runtime.now(), call.saying.words_lang))
                elif isinstance(item, Ask):
                    follow = dialog.typed(await ask(call, item.phrase, item.max_digits))
                    break
                elif isinstance(item, Save):
                    outcome, saved = await save(call, item)
                    follow = dialog.answered(outcome)
                    if saved is not None:
                        follow.insert(0, Describe(saved))
                    break
                else:
                    follow = dialog.answered(await end(call, item.absence_id))
                    break
            out = follow
    except NoSpeech:
        log.warning("phone menu: %s cannot set an absence by phone: no speech engine to say "
                    "the questions (install espeak-ng: docs/phone-menu.md)", user.id)
        await call.saying.stock((prompts.NOT_AVAILABLE,), cut=False)


async def save(call: MenuCall, item: Save) -> tuple[Input, Absence | None]:
    """Write the absence; the outcome, and the absence as saved (None unless saved)."""
    runtime, user = call.runtime, call.user
    policy = runtime.policy
    back_on = item.last_day + timedelta(days=1)

    def write(store: UserStore) -> Any:
        refined = store.set_absence(policy, user.id, until=back_on, backup=item.backup,
                                    actor=user.id, origin=by_phone.ORIGIN)
        return max(refined.absences, key=lambda a: a.id)

    try:
        stored = await by_phone.in_store(runtime, write)
    except RefinementRefused as exc:
        log.warning("phone menu: %s's absence was refused by the user store: %s", user.id, exc)
        fields = {p.field for p in exc.problems}
        if "absence.backup" in fields:
            return Input.BACKUP_REFUSED, None
        if "absence" in fields:
            return Input.OVERLAPS, None
        return Input.REFUSED, None
    except StoreError as exc:
        log.error("phone menu: %s's absence was not saved: %s", user.id, exc)
        return Input.FAILED, None
    by_phone.obeyed_now(runtime)
    log.info("phone menu: %s set an absence by phone until %s (back on %s), backup %s",
             user.id, item.last_day.isoformat(), back_on.isoformat(), item.backup or "none")
    return Input.SAVED, Absence(user=user.id, start=stored.start, until=stored.until,
                                backup=stored.backup, message=stored.message)


async def end(call: MenuCall, absence_id: int) -> Input:
    runtime, user = call.runtime, call.user

    def write(store: UserStore) -> None:
        store.clear_absences(runtime.policy, user.id, [absence_id], actor=user.id,
                             origin=by_phone.ORIGIN)

    try:
        await by_phone.in_store(runtime, write)
    except RefinementRefused:
        log.info("phone menu: %s's absence #%d was already removed (web page or CLI)",
                 user.id, absence_id)
        return Input.ENDED
    except StoreError as exc:
        log.error("phone menu: %s's absence #%d was not removed: %s", user.id, absence_id,
                  exc)
        return Input.FAILED
    by_phone.obeyed_now(runtime)
    log.info("phone menu: %s ended their absence #%d by phone", user.id, absence_id)
    return Input.ENDED


__all__ = ["TABLE", "AbsenceDialog", "Input", "Step", "backups_possible", "last_day",
           "set_absence"]
