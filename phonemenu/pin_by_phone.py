"""Options, 4: the caller changes their phone PIN; it is saved in the user store.

As VoiceMailMain does it (its own prompts: new password, re-enter, mismatch,
changed): the new PIN twice, 4 to 12 digits. It is stored only as a hash,
made in a worker thread (scrypt is slow on purpose), through
:meth:`UserStore.set <mailcall.userstore.service.UserStore.set>`, so the same
ceiling check as the web page's and the CLI's applies and the audit log says
``phone``. The login reads PINs through the refined policy
(:func:`~mailcall.userstore.overlay.decision_policy`), so the next call opens
the mailbox with the new PIN and no longer with the old one.

The dialog is a table (:data:`TABLE`): (step, what was typed) -> (what is
said, next step, whether it costs a try). Nothing is saved before the second
entry matched; a hang-up before that, or three failed tries, saves nothing.
The PIN itself is never logged and never shown in a repr.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

from mailcall.core.policy.pins import hash_pin
from mailcall.userstore import by_phone
from mailcall.userstore.errors import RefinementRefused, StoreError

from .dialog import Ask, Tell, Typed, ask, table_step, tell

if TYPE_CHECKING:
    from mailcall.userstore.service import UserStore

    from .call import MenuCall

log = logging.getLogger("mailcall.phonemenu")

MIN_DIGITS, MAX_DIGITS = 4, 12
"""What ``hash_pin`` accepts (core/policy/pins.py)."""
ENTRY_DIGITS = MAX_DIGITS + 1
"""Read one digit more than allowed, so a PIN too long is refused, not silently cut."""


class Step(StrEnum):
    NEW = "new"
    """The new PIN is asked."""
    AGAIN = "again"
    """The same PIN again."""
    SAVE = "save"
    """Both matched: the hash is being written."""
    DONE = "done"


class Input(StrEnum):
    VALID = "valid"
    """4 to 12 digits."""
    INVALID = "invalid"
    """Too short, too long."""
    SILENT = "silent"
    """Nothing typed."""
    CANCEL = "cancel"
    """``*``: the caller gives up."""
    SAME = "same"
    DIFFERENT = "different"
    SAVED = "saved"
    REFUSED = "refused"
    """The store refused it (the profile's ceiling): nothing saved."""
    FAILED = "failed"
    """The store cannot be used (unreadable, locked): nothing saved."""


TABLE: MappingProxyType[tuple[Step, Input], tuple[tuple[str, ...], Step, bool]] = \
    MappingProxyType({
        (Step.NEW, Input.VALID): ((), Step.AGAIN, False),
        (Step.NEW, Input.INVALID): (("pin_invalid", "pin_rules"), Step.NEW, True),
        (Step.NEW, Input.SILENT): ((), Step.NEW, True),
        (Step.NEW, Input.CANCEL): (("nothing_saved",), Step.DONE, False),
        (Step.AGAIN, Input.SAME): ((), Step.SAVE, False),
        (Step.AGAIN, Input.DIFFERENT): (("pin_mismatch",), Step.NEW, True),
        (Step.AGAIN, Input.SILENT): ((), Step.AGAIN, True),
        (Step.AGAIN, Input.CANCEL): (("nothing_saved",), Step.DONE, False),
        (Step.SAVE, Input.SAVED): (("pin_changed",), Step.DONE, False),
        (Step.SAVE, Input.REFUSED): (("pin_refused",), Step.DONE, False),
        (Step.SAVE, Input.FAILED): (("settings_unavailable",), Step.DONE, False),
    })
"""Every (step, input) the dialog can meet; tests/phonemenu/test_phone_settings.py walks it."""

QUESTIONS = MappingProxyType({Step.NEW: "pin_new", Step.AGAIN: "pin_again"})


@dataclass(frozen=True, slots=True)
class Save:
    pin: str = field(repr=False)


Out = Tell | Ask | Save


def classify(step: Step, typed: Typed, first: str) -> Input:
    """What `typed` is at `step` (`first`: the PIN typed at NEW, for AGAIN)."""
    if typed.silent:
        return Input.SILENT
    if "*" in typed.digits:
        return Input.CANCEL
    if step is Step.AGAIN:
        return Input.SAME if typed.digits == first else Input.DIFFERENT
    if typed.digits.isdigit() and MIN_DIGITS <= len(typed.digits) <= MAX_DIGITS:
        return Input.VALID
    return Input.INVALID


@dataclass
class PinDialog:
    """Sans-I/O: :meth:`start`, then :meth:`typed` for each Ask, :meth:`saved` for Save."""

    step: Step = Step.NEW
    tries: int = 0
    first: str = field(default="", repr=False)

    @property
    def done(self) -> bool:
        return self.step is Step.DONE

    def start(self) -> list[Out]:
        self.step, self.tries, self.first = Step.NEW, 0, ""
        return [Ask(QUESTIONS[Step.NEW], ENTRY_DIGITS)]

    def typed(self, typed: Typed) -> list[Out]:
        step = self.step
        kind = classify(step, typed, self.first)
        if step is Step.NEW and kind is Input.VALID:
            self.first = typed.digits
        return self._go(kind)

    def saved(self, outcome: Input) -> list[Out]:
        return self._go(outcome)

    def _go(self, kind: Input) -> list[Out]:
        said, step, self.tries = table_step(TABLE, self.step, kind, self.tries)
        out: list[Out] = [*said]
        if step is None:
            self.step, self.first = Step.DONE, ""
            return out
        after = step
        if after is Step.NEW:
            self.first = ""
        self.step = after
        if after in QUESTIONS:
            out.append(Ask(QUESTIONS[after], ENTRY_DIGITS))
        elif after is Step.SAVE:
            out.append(Save(self.first))
            self.first = ""
        return out


async def change_pin(call: MenuCall) -> None:
    """The whole dialog on the call; returns when it is over (AgiHangup if the caller left)."""
    dialog = PinDialog()
    out = dialog.start()
    while out:
        follow: list[Out] = []
        for item in out:
            if isinstance(item, Tell):
                await tell(call, item.phrase)
            elif isinstance(item, Ask):
                follow = dialog.typed(await ask(call, item.phrase, item.max_digits))
                break
            else:
                follow = dialog.saved(await save(call, item.pin))
                break
        out = follow


async def save(call: MenuCall, pin: str) -> Input:
    user = call.user
    policy = call.runtime.policy

    def write(store: UserStore) -> None:
        store.set(policy, user.id, {"pin": hash_pin(pin)}, actor=user.id,
                  origin=by_phone.ORIGIN)

    try:
        await by_phone.in_store(call.runtime, write)
    except RefinementRefused as exc:
        log.warning("phone menu: %s's new PIN was refused by the user store: %s", user.id, exc)
        return Input.REFUSED
    except StoreError as exc:
        log.error("phone menu: %s's new PIN was not saved: %s", user.id, exc)
        return Input.FAILED
    by_phone.obeyed_now(call.runtime)
    log.info("phone menu: %s changed their PIN by phone (saved in the user store %s)",
             user.id, by_phone.store_location(call.runtime))
    return Input.SAVED


__all__ = ["TABLE", "Input", "PinDialog", "Step", "change_pin", "classify"]
