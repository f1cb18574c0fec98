"""The phone menu as a sans-I/O state machine: fed keys and playback events, returns effects.

Nothing here talks to Asterisk or IMAP. The listening loop (:mod:`.call`)
feeds what happened on the call (a key, a wait that ran out, a message's
audio starting or ending, the caller hanging up) and carries out the effects
it gets back, in order; when an effect that plays something is cut by a key,
the remaining effects are dropped and the key is fed. So every decision
about what a key does, where the cursor goes and when a message counts as
heard is made here, once, and tested without a call.

Heard means the message's own audio (or text) began and the caller acted
after that: it played to the end, or they pressed a key during it. Keys
pressed during the envelope, and a hang-up at any point, mark nothing: "no
flag set for a message not heard" (issue #12).

Messages are opaque references (whatever the mail store hands out) kept in
the order the store gave them: voicemail new first then saved, unread mail
newest first. The store lists a folder a page at a time (``max_listed``):
when the cursor comes within ``PAGE_AHEAD`` of the end of what was listed and
the folder may hold more, :class:`FetchMore` asks for the next page in the
background; :class:`MoreListed` brings it and it is appended. 6 (or 9, or a
delete) at the very end waits for it (``wait``) and moves on into it. A
message moved to Trash leaves this call's list at once; if the move (or a
mark) then fails, the loop feeds :class:`ActFailed` and the
transition is undone, so nothing is confirmed that did not happen. A key typed
while a page or a change is waited for ("one moment please") acts on what the caller
last heard announced, never on a message not presented yet (:class:`MoreListed`'s
``typed``, :class:`TypedDuringChange`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .keymap import TIMEOUT, Op, State, lookup

VOICE = "voice"
MAIL = "mail"
FOLDERS = (VOICE, MAIL)
CHANGES = ("seen", "save", "trash", "marked")
"""The acts that change the mailbox (or confirm a change), whose failure comes back as
:class:`ActFailed`."""
WAITED_CHANGES = ("save", "trash", "marked")
"""Those the caller waits for (the outcome is said): a key typed meanwhile comes back as
:class:`TypedDuringChange` (``seen`` is written in the background)."""
MAX_TIMEOUTS = 3
"""Menus said again this many times with nothing typed, then goodbye."""
MAX_INVALID = 10
"""Invalid keys in a row before goodbye: a DTMF flood ends the call, it never loops."""
PAGE_AHEAD = 5
"""The next page is asked for when the message presented is this close to the end of
what was listed: fetched while the caller listens to the last few."""


# ------------------------------------------------------------------ events


@dataclass(frozen=True, slots=True)
class Key:
    digit: str


@dataclass(frozen=True, slots=True)
class Timeout:
    """Nothing typed within the wait after the effects were carried out."""


@dataclass(frozen=True, slots=True)
class AudioStarted:
    """The envelope is over; the message's own audio (or text) begins."""


@dataclass(frozen=True, slots=True)
class PlaybackEnded:
    """The message played to its end without a key."""


@dataclass(frozen=True, slots=True)
class Unplayable:
    """The message could not be played (undecodable, gone, mailbox unreachable): it was
    said so; the menu moves on to the next one and marks nothing."""


@dataclass(frozen=True, slots=True)
class ActFailed:
    """A ``seen``, ``save`` or ``trash`` of the last transition failed (the apology was
    said): the rest of its effects were dropped, and the transition is undone — the
    message stays in this call's list, where the cursor was, and is not counted as
    marked — so nothing is confirmed that did not happen."""

    what: str
    folder: str
    ref: Any


@dataclass(frozen=True, slots=True)
class MoreListed:
    """The next page of `folder` (:class:`FetchMore`): `refs` to append, in the store's
    order; `more` whether the folder may hold still more; `failed` when the store could
    not be reached (the apology was said; nothing is appended, the next 6 asks again);
    `typed` a key that cut "one moment please" during the wait: the page is appended,
    nothing is presented, and the loop feeds that key next, on the message the caller
    last heard (the first of the page was never announced)."""

    folder: str
    refs: tuple[Any, ...] = ()
    more: bool = False
    failed: bool = False
    typed: str | None = None


@dataclass(frozen=True, slots=True)
class TypedDuringChange:
    """`digit` cut "one moment please" while the ``save``, ``marked`` or ``trash`` of the
    last transition was waited for; the change stands, but the confirmation and the next
    message's Present after it were dropped. The key acts where the caller is — on the
    message menu of the message they last heard announced — after the confirmation (so
    they know the change stood), never on the next message, which was not announced.
    After a delete the cursor is on the gap the message left (``Menu.gone``)."""

    what: str
    folder: str
    ref: Any
    digit: str


@dataclass(frozen=True, slots=True)
class Hangup:
    """The caller is gone: nothing more is done, nothing more is marked."""


Event = (Key | Timeout | AudioStarted | PlaybackEnded | Unplayable | ActFailed | MoreListed
         | TypedDuringChange | Hangup)


# ------------------------------------------------------------------ effects


@dataclass(frozen=True, slots=True)
class Say:
    """Play one of the menu's phrases (see ``PHRASES``); a key cuts it."""

    phrase: str
    folder: str = VOICE
    count: int = 0
    cut: bool = True
    """False for a confirmation said before the next message is presented ("deleted",
    "saved", the other folder's count): a key typed then would act on a message the
    caller has not heard announced, so it is not listened for."""


@dataclass(frozen=True, slots=True)
class Present:
    """Envelope, then the message itself; report AudioStarted, then PlaybackEnded."""

    folder: str
    ref: Any
    position: int
    """0-based place in the folder, for "first" and "last"."""
    total: int


@dataclass(frozen=True, slots=True)
class Act:
    """A change or an action on one message: ``seen`` (heard), ``save`` (kept, seen),
    ``trash``, ``marked`` (the ``seen`` asked earlier is written: "saved" depends on it),
    ``reply``, ``call_back``, ``forward``, ``envelope`` (said again)."""

    what: str
    folder: str
    ref: Any


@dataclass(frozen=True, slots=True)
class Greeting:
    """Record a greeting of `kind` (:mod:`.options` checks the profile grants it)."""

    kind: str


@dataclass(frozen=True, slots=True)
class Setting:
    """A dialog on one of the user's own settings, written to the user store: ``pin``
    (:mod:`.pin_by_phone`) or ``absence`` (:mod:`.absence_by_phone`). The dialog has
    its own table; the menu is back in the options once it is over."""

    what: str


@dataclass(frozen=True, slots=True)
class FetchMore:
    """Get the next page of `folder` from the store, on the call's one IMAP session. With
    `wait` False it runs in the background and the carrying out goes on at once (the
    page is kept until asked for); with `wait` True the effect ends with the
    :class:`MoreListed` event ("one moment please" if it is slow)."""

    folder: str
    wait: bool = False


@dataclass(frozen=True, slots=True)
class End:
    """Say nothing more: the call ends (goodbye was said just before)."""


Effect = Say | Present | Act | Greeting | Setting | FetchMore | End

PHRASES = (
    "counts", "main_menu", "message_menu", "advanced_menu", "options_menu", "help_main",
    "help_message", "no_more", "empty_folder", "deleted", "saved", "invalid", "goodbye",
    "folder_voice", "folder_mail",
)
"""Every phrase a Say can name; agi/prompts.py's MENU_PHRASES maps each to what is played."""

_ON_THE_MESSAGE = (Op.REPEAT, Op.DELETE, Op.SAVE, Op.ADVANCED_MENU, Op.FORWARD)
"""The message menu's keys that act on the message itself (none after it was deleted)."""

_MENU_OF = {State.MAIN: "main_menu", State.MESSAGE: "message_menu",
            State.PLAYING: "message_menu", State.ADVANCED: "advanced_menu",
            State.OPTIONS: "options_menu", State.DONE: "goodbye"}


@dataclass
class Menu:
    """One call's menu. Build it with the message lists, call :meth:`start`, then feed."""

    voice: list[Any] = field(default_factory=list)
    mail: list[Any] = field(default_factory=list)
    state: State = State.MAIN
    folder: str = VOICE
    index: int = 0
    audio_started: bool = False
    """The current message's own audio began (its envelope is over)."""
    heard: set[tuple[str, int]] = field(default_factory=set)
    """id() of refs marked seen in this call: a message is marked once."""
    more: dict[str, bool] = field(default_factory=lambda: {VOICE: True, MAIL: True})
    """Whether each folder may hold more than was listed; True until a :class:`MoreListed`
    says otherwise (the call answers at once, without IMAP, when its listing was whole)."""
    asked: set[str] = field(default_factory=set)
    """Folders whose next page was asked for and has not been appended yet."""
    waiting: str | None = None
    """The folder whose next page the cursor waits for, one past the end of its list."""
    gone: bool = False
    """The message the caller last heard was deleted and the next one was not presented
    (:class:`TypedDuringChange`): the cursor is on the gap before ``index``. 6 presents the
    message at ``index``, 4 the one before the gap; keys on the message itself (5 7 9 3 8)
    have nothing to act on and get the message menu."""
    timeouts: int = 0
    invalid: int = 0
    _paging: tuple[set[str], str | None] = field(default_factory=lambda: (set(), None),
                                                 repr=False)
    """``asked`` and ``waiting`` before the last transition: a page it asked for after its
    change is not asked at all when the rest of its effects are dropped."""
    _before: tuple[list[tuple[str, str, int]], tuple[Any, ...]] | None = field(
        default=None, repr=False)
    """The changes the last transition asked for, and the cursor and lists before it,
    so an :class:`ActFailed` of one of them puts them back."""

    # --------------------------------------------------------------- queries

    def items(self, folder: str | None = None) -> list[Any]:
        return self.voice if (folder or self.folder) == VOICE else self.mail

    @property
    def current(self) -> Any | None:
        items = self.items()
        return items[self.index] if 0 <= self.index < len(items) else None

    @property
    def done(self) -> bool:
        return self.state is State.DONE

    # --------------------------------------------------------------- driving

    def start(self) -> list[Effect]:
        """What the caller hears once logged in: the counts, then the main menu."""
        self.state = State.MAIN
        self.folder = VOICE  # 1 listens to voicemail, 2 goes to the mail: always the same keys
        return [Say("counts", VOICE, len(self.voice)), Say("counts", MAIL, len(self.mail)),
                Say("main_menu")]

    def feed(self, event: Event) -> list[Effect]:
        if self.done:
            return []
        if isinstance(event, Hangup):
            self.state = State.DONE
            return []
        if isinstance(event, AudioStarted):
            if self.state is State.PLAYING:
                self.audio_started = True
            return []
        if isinstance(event, ActFailed):
            return self._undo(event)
        if isinstance(event, MoreListed):
            return self._more_listed(event)
        if isinstance(event, TypedDuringChange):
            return self._typed_during_change(event)
        self._paging = (set(self.asked), self.waiting)
        before = (self.state, self.folder, self.index, self.audio_started, list(self.voice),
                  list(self.mail), set(self.heard))
        out = self._feed(event)
        changes = [(e.what, e.folder, id(e.ref)) for e in out
                   if isinstance(e, Act) and e.what in CHANGES]
        self._before = (changes, before) if changes else None
        return out

    def _feed(self, event: Event) -> list[Effect]:
        if isinstance(event, PlaybackEnded):
            if self.state is not State.PLAYING:
                return []
            out = self._mark_heard()
            self.state = State.MESSAGE
            return [*out, Say("message_menu")]
        if isinstance(event, Unplayable):
            if self.state is not State.PLAYING:
                return []
            if self.index + 1 >= len(self.items()) and not self.more[self.folder]:
                self.state = State.MESSAGE
                return [Say("no_more"), Say("message_menu")]
            self.index += 1
            return self._present()
        key = TIMEOUT if isinstance(event, Timeout) else event.digit
        return self._key(key)

    # --------------------------------------------------------------- keys

    def _key(self, key: str) -> list[Effect]:
        before = self.state
        op, after = lookup(before, key)
        out: list[Effect] = []
        if before is State.PLAYING and key != TIMEOUT and op is not Op.SAVE:
            out += self._mark_heard()  # the caller acted while hearing it (9: saved below)
        if op is Op.TIMED_OUT:
            self.timeouts += 1
            if self.timeouts >= MAX_TIMEOUTS:
                return self._goodbye()
            return [Say(_MENU_OF[before])]
        self.timeouts = 0
        if op is Op.INVALID:
            self.invalid += 1
            if self.invalid >= MAX_INVALID:
                return self._goodbye()
            return [Say("invalid"), Say(_MENU_OF[before])]
        self.invalid = 0
        self.state = after
        return out + self._do(op, before)

    def _do(self, op: Op, before: State) -> list[Effect]:
        if self.gone:
            if op in _ON_THE_MESSAGE:  # deleted: nothing to repeat, delete, save, answer
                self.state = State.MESSAGE
                return [Say("message_menu")]
            if op is Op.PREVIOUS and self.index <= 0:  # none before: still at the gap
                self.state = State.MESSAGE
                return [Say("no_more"), Say("message_menu")]
            if op is not Op.HELP:
                self.gone = False
            if op is Op.NEXT:  # the message after the deleted one is at its place
                return self._present()
        if op is Op.GOODBYE:
            return self._goodbye()
        if op is Op.MAIN_MENU:
            return [Say("main_menu")]
        if op is Op.MESSAGE_MENU or op is Op.SKIP:
            return [Say("message_menu")]
        if op is Op.ADVANCED_MENU:
            if self.current is None:
                return self._back_to_main("no_more")
            return [Say("advanced_menu")]
        if op is Op.OPTIONS_MENU:
            return [Say("options_menu")]
        if op is Op.HELP:
            return [Say("help_main" if before is State.MAIN else "help_message"),
                    Say(_MENU_OF[self.state])]
        if op is Op.CHANGE_PIN:
            return [Setting("pin"), Say("options_menu")]
        if op is Op.ABSENCE:
            return [Setting("absence"), Say("options_menu")]
        if op in (Op.GREETING_UNAVAILABLE, Op.GREETING_BUSY, Op.GREETING_ABSENCE):
            kind = op.value.removeprefix("greeting_")
            return [Greeting(kind), Say("main_menu")]
        if op is Op.LISTEN:
            self.index = 0
            return self._present()
        if op is Op.SWITCH_FOLDER:
            self.folder = MAIL if self.folder == VOICE else VOICE
            self.index = 0
            return [Say("folder_" + self.folder, self.folder, len(self.items()), cut=False),
                    *self._present()]
        if op is Op.REPEAT:
            return self._present()
        if op is Op.NEXT:
            if self.index + 1 >= len(self.items()) and not self.more[self.folder]:
                self.state = State.MESSAGE
                return [Say("no_more"), Say("message_menu")]
            self.index += 1  # one past the end: _present waits for the next page
            return self._present()
        if op is Op.PREVIOUS:
            if self.index <= 0:
                self.state = State.MESSAGE
                return [Say("no_more"), Say("message_menu")]
            self.index -= 1
            return self._present()
        ref = self.current
        if ref is None:
            return self._back_to_main("no_more")
        if op is Op.DELETE:
            self.items().pop(self.index)
            return [Act("trash", self.folder, ref), Say("deleted", cut=False), *self._present()]
        if op is Op.SAVE:
            # "saved" only once the flag stands: a message not marked yet is saved (and
            # waited for); one already marked heard waits for that mark to be written.
            mark = self._mark_heard(force=True) or [Act("marked", self.folder, ref)]
            out: list[Effect] = [*mark, Say("saved", cut=False)]
            if self.index + 1 >= len(self.items()) and not self.more[self.folder]:
                self.state = State.MESSAGE
                return [*out, Say("no_more"), Say("message_menu")]
            self.index += 1
            return [*out, *self._present()]
        what = {Op.REPLY: "reply", Op.CALL_BACK: "call_back", Op.ENVELOPE: "envelope",
                Op.FORWARD: "forward"}[op]
        return [Act(what, self.folder, ref), Say("message_menu")]

    # --------------------------------------------------------------- helpers

    def _present(self) -> list[Effect]:
        items = self.items()
        self.audio_started = False
        if self.index >= len(items) and self.more[self.folder]:
            # Past what was listed: the next page, waited for (it may be there already).
            self.waiting = self.folder
            self.asked.add(self.folder)
            self.index = len(items)
            self.state = State.MESSAGE
            return [FetchMore(self.folder, wait=True)]
        if not items:
            return self._back_to_main("empty_folder")
        if self.index >= len(items):
            self.index = len(items) - 1
            self.state = State.MESSAGE
            return [Say("no_more"), Say("message_menu")]
        self.state = State.PLAYING
        ahead: list[Effect] = []
        if (self.more[self.folder] and self.folder not in self.asked
                and len(items) - self.index <= PAGE_AHEAD):
            self.asked.add(self.folder)
            ahead.append(FetchMore(self.folder))  # before Present: a key cuts what follows
        return [*ahead, Present(self.folder, items[self.index], self.index, len(items))]

    def _more_listed(self, event: MoreListed) -> list[Effect]:
        """A page arrived: appended (unless the store failed); the cursor that waited for
        it moves on into it, or hears "no more" when the folder had nothing more."""
        folder = event.folder
        self.asked.discard(folder)
        heard = len(self.items(folder))  # the cursor waits one past these
        if not event.failed:
            self.items(folder).extend(event.refs)
            self.more[folder] = event.more
        if self.waiting != folder:
            return []
        self.waiting = None
        if folder != self.folder:  # the caller switched folders meanwhile (not possible
            return []              # today: the wait is one effect), nothing to move
        items = self.items()
        if event.typed is not None and not event.failed:
            # A key cut "one moment please": it acts where the caller is, on the message
            # last heard, not on the page's first, which was never announced.
            self.index = max(heard - 1, 0)
            self.state = State.MESSAGE if heard else State.MAIN
            return []
        if event.failed or self.index >= len(items):
            self.index = max(len(items) - 1, 0)
            self.state = State.MESSAGE if items else State.MAIN
            if event.failed:  # the apology was said; 6 asks again
                return [Say(_MENU_OF[self.state])]
            if not items:
                return self._back_to_main("empty_folder")
            return [Say("no_more"), Say("message_menu")]
        return self._present()

    def _typed_during_change(self, event: TypedDuringChange) -> list[Effect]:
        """The change stood; what came after it was dropped. The cursor goes back where
        the caller is — the message just saved, or the gap the deleted one left — the
        confirmation is said, and the key acts there."""
        asked = self._before[0] if self._before is not None else ()
        if (event.what, event.folder, id(event.ref)) not in asked:  # not the last one's
            return self.feed(Key(event.digit))
        assert self._before is not None
        state, self.folder, self.index, self.audio_started = self._before[1][:4]
        self._before = None
        self.asked, self.waiting = self._paging  # the dropped FetchMore was never asked
        self.state = State.MAIN if state is State.MAIN else State.MESSAGE
        self.gone = event.what == "trash"
        said = Say("deleted" if self.gone else "saved", cut=False)
        return [said, *self.feed(Key(event.digit))]

    def _back_to_main(self, phrase: str) -> list[Effect]:
        self.state = State.MAIN
        return [Say(phrase, self.folder), Say("main_menu")]

    def _mark_heard(self, force: bool = False) -> list[Effect]:
        ref = self.current
        if ref is None or not (force or self.audio_started):
            return []
        key = (self.folder, id(ref))
        if key in self.heard:
            return []
        self.heard.add(key)
        return [Act("save" if force else "seen", self.folder, ref)]

    def _undo(self, failed: ActFailed) -> list[Effect]:
        """The change failed: back to before the transition that asked for it, on the
        message menu (a key typed during the apology comes next)."""
        asked = self._before[0] if self._before is not None else ()
        if (failed.what, failed.folder, id(failed.ref)) not in asked:  # not the last one's
            return [Say("message_menu")] if self.state is not State.MAIN else [Say("main_menu")]
        assert self._before is not None
        state, self.folder, self.index, self.audio_started, voice, mail, heard = \
            self._before[1]
        self._before = None
        self.voice[:] = voice  # the same list objects: the call's presenter holds them
        self.mail[:] = mail
        self.heard = heard
        self.asked, self.waiting = self._paging  # a FetchMore dropped with the rest
        self.state = State.MAIN if state is State.MAIN else State.MESSAGE
        return [Say(_MENU_OF[self.state])]

    def _goodbye(self) -> list[Effect]:
        self.state = State.DONE
        return [Say("goodbye"), End()]
