"""The phone menu's keys, in one table: (state, key) -> (operation, next state).

Laid out as VoiceMailMain users know it (app_voicemail.c's menus): 1 listen,
4 previous, 5 repeat, 6 next, 7 delete, 9 save, 3 advanced (1 reply, 2 call
back, 3 envelope), 8 forward, 0 mailbox options (1 unavailable greeting, 2 busy,
3 absence, 4 absence greeting — VoiceMailMain's temporary one —, 5 PIN), * help,
# skip or exit.
Keeping every key of every state in one literal table is what lets a test
check that no (state, key) pair is left to chance, and lets docs/phone-menu.md
be checked against it: a key means one thing in one state, wherever the
handler is.

The operations are names; :mod:`.machine` says what each one does to the
cursor and which effects it asks for. ``NEXT_STATE_SAME`` keeps the state.
"""

from __future__ import annotations

from enum import StrEnum
from types import MappingProxyType


class State(StrEnum):
    MAIN = "main"
    """After login, or once a folder is done: 1 listen, 2 other folder, 0 options."""
    PLAYING = "playing"
    """A message is being played (envelope, then audio or text); a key interrupts it."""
    MESSAGE = "message"
    """A message was played: the message menu (4 5 6 7 9 3 8)."""
    ADVANCED = "advanced"
    """3 pressed on a message: 1 reply, 2 call back, 3 envelope."""
    OPTIONS = "options"
    """0 pressed: 1 and 2 the unavailable and busy greetings, 3 set or end an absence,
    4 the absence greeting, 5 change the PIN."""
    DONE = "done"
    """Goodbye said; the call ends."""


KEYS: tuple[str, ...] = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "0", "*", "#")
TIMEOUT = "timeout"
"""Not a key: nothing was typed within the wait after a menu."""
INPUTS: tuple[str, ...] = (*KEYS, TIMEOUT)


class Op(StrEnum):
    MAIN_MENU = "main_menu"
    """Say the main menu again."""
    LISTEN = "listen"
    """Play the first message of the current folder."""
    SWITCH_FOLDER = "switch_folder"
    """Voicemail <-> unread mail, then its first message."""
    PREVIOUS = "previous"
    REPEAT = "repeat"
    NEXT = "next"
    DELETE = "delete"
    """Move to Trash (never expunged), then the next message."""
    SAVE = "save"
    """Keep it, marked \\Seen, then the next message."""
    SKIP = "skip"
    """# while a message plays: stop it, say the message menu."""
    MESSAGE_MENU = "message_menu"
    ADVANCED_MENU = "advanced_menu"
    REPLY = "reply"
    CALL_BACK = "call_back"
    ENVELOPE = "envelope"
    FORWARD = "forward"
    OPTIONS_MENU = "options_menu"
    GREETING_UNAVAILABLE = "greeting_unavailable"
    GREETING_BUSY = "greeting_busy"
    GREETING_ABSENCE = "greeting_absence"
    CHANGE_PIN = "change_pin"
    """The PIN dialog (:mod:`.pin_by_phone`): new PIN twice, saved in the user store."""
    ABSENCE = "absence"
    """The absence dialog (:mod:`.absence_by_phone`): last day, backup, or end the one set."""
    HELP = "help"
    INVALID = "invalid"
    GOODBYE = "goodbye"
    TIMED_OUT = "timed_out"
    """Nothing typed: say the menu of the state again (three times, then goodbye)."""


SAME = None
"""Next state: stay where the menu is."""

_MESSAGE_KEYS: dict[str, tuple[Op, State | None]] = {
    "1": (Op.LISTEN, State.PLAYING),
    "2": (Op.SWITCH_FOLDER, State.PLAYING),
    "3": (Op.ADVANCED_MENU, State.ADVANCED),
    "4": (Op.PREVIOUS, State.PLAYING),
    "5": (Op.REPEAT, State.PLAYING),
    "6": (Op.NEXT, State.PLAYING),
    "7": (Op.DELETE, State.PLAYING),
    "8": (Op.FORWARD, State.MESSAGE),
    "9": (Op.SAVE, State.PLAYING),
    "0": (Op.OPTIONS_MENU, State.OPTIONS),
    "*": (Op.HELP, State.MESSAGE),
    "#": (Op.GOODBYE, State.DONE),
    TIMEOUT: (Op.TIMED_OUT, State.MESSAGE),
}

TABLE: MappingProxyType[tuple[State, str], tuple[Op, State | None]] = MappingProxyType({
    **{(State.MAIN, k): v for k, v in {
        "1": (Op.LISTEN, State.PLAYING),
        "2": (Op.SWITCH_FOLDER, State.PLAYING),
        "3": (Op.INVALID, SAME),
        "4": (Op.INVALID, SAME),
        "5": (Op.INVALID, SAME),
        "6": (Op.INVALID, SAME),
        "7": (Op.INVALID, SAME),
        "8": (Op.INVALID, SAME),
        "9": (Op.INVALID, SAME),
        "0": (Op.OPTIONS_MENU, State.OPTIONS),
        "*": (Op.HELP, SAME),
        "#": (Op.GOODBYE, State.DONE),
        TIMEOUT: (Op.TIMED_OUT, SAME),
    }.items()},
    # While a message plays, its keys act at once (the prompt is cut), # skips to the menu.
    **{(State.PLAYING, k): v for k, v in {**_MESSAGE_KEYS,
                                          "#": (Op.SKIP, State.MESSAGE),
                                          TIMEOUT: (Op.MESSAGE_MENU, State.MESSAGE)}.items()},
    **{(State.MESSAGE, k): v for k, v in _MESSAGE_KEYS.items()},
    **{(State.ADVANCED, k): v for k, v in {
        "1": (Op.REPLY, State.MESSAGE),
        "2": (Op.CALL_BACK, State.MESSAGE),
        "3": (Op.ENVELOPE, State.MESSAGE),
        "4": (Op.INVALID, SAME),
        "5": (Op.INVALID, SAME),
        "6": (Op.INVALID, SAME),
        "7": (Op.INVALID, SAME),
        "8": (Op.INVALID, SAME),
        "9": (Op.INVALID, SAME),
        "0": (Op.INVALID, SAME),
        "*": (Op.MESSAGE_MENU, State.MESSAGE),
        "#": (Op.MESSAGE_MENU, State.MESSAGE),
        TIMEOUT: (Op.TIMED_OUT, SAME),
    }.items()},
    **{(State.OPTIONS, k): v for k, v in {
        "1": (Op.GREETING_UNAVAILABLE, State.MAIN),
        "2": (Op.GREETING_BUSY, State.MAIN),
        # VoiceMailMain's options (app_voicemail.c vm_options()): 1 unavailable, 2 busy,
        # 4 temporary greeting, 5 password. Its 3 records a name, which mailcall has
        # none of: the absence itself goes there, beside its greeting.
        "3": (Op.ABSENCE, SAME),
        "4": (Op.GREETING_ABSENCE, State.MAIN),
        "5": (Op.CHANGE_PIN, SAME),
        "6": (Op.INVALID, SAME),
        "7": (Op.INVALID, SAME),
        "8": (Op.INVALID, SAME),
        "9": (Op.INVALID, SAME),
        "0": (Op.INVALID, SAME),
        "*": (Op.MAIN_MENU, State.MAIN),
        "#": (Op.MAIN_MENU, State.MAIN),
        TIMEOUT: (Op.TIMED_OUT, SAME),
    }.items()},
    **{(State.DONE, k): (Op.GOODBYE, SAME) for k in INPUTS},
})
"""Every (state, input) pair; tests/phonemenu/test_machine.py checks none is missing."""


def lookup(state: State, key: str) -> tuple[Op, State]:
    """The operation for `key` in `state` and the state after it (never None)."""
    op, after = TABLE.get((state, key), (Op.INVALID, SAME))
    return op, state if after is None else after
