"""A key that cuts "one moment please" while a delete or a save is waited for acts on what
the caller last heard announced, never on the next message, which was not presented.

The old loop fed that key to the menu with the cursor already on the next message
(PLAYING, unannounced): 7 pressed again during a slow delete deleted the next message
unheard. Real peers: the private Dovecot of support.py behind the relay of
test_flags_and_faults.py, which holds the MOVE (or the STORE) past SLOW_S; the scripted
caller of phone.py.
"""

from __future__ import annotations

import pytest

from mailcall.phonemenu.keymap import State
from mailcall.phonemenu.machine import (
    MAIL,
    VOICE,
    Act,
    ActFailed,
    AudioStarted,
    FetchMore,
    Key,
    Menu,
    PlaybackEnded,
    Present,
    Say,
    TypedDuringChange,
)

from .phone import Phone, Press
from .support import cleanup, start_mailboxes
from .test_flags_and_faults import AUDIO, MENU_WAIT, ONE_MOMENT, Relay, call, flags, pin_then

HOLD_CHANGE_S = 1.5
"""The MOVE or STORE held this long: "one moment please" comes (after 1 s), within the
store's 3 s timeout."""
ENVELOPE = r"STREAM FILE \S*/call-\S*/[0-9a-f]+-0001 "
"""The first sentence of a message's envelope (spoken into the call's scratch folder)."""


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


def message_ids(boxes, folder: str) -> list[str]:
    conn = boxes.dovecot.imap(boxes.email("alice"))
    try:
        typ, _ = conn.select(f'"{folder}"', readonly=True)
        assert typ == "OK", folder
        _typ, data = conn.uid("FETCH", "1:*", "(BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        return [item[1].decode().split(":", 1)[1].strip()
                for item in data if isinstance(item, tuple)]
    finally:
        conn.logout()


def seen(boxes, folder: str) -> list[bool]:
    """Whether each message of `folder` is \\Seen (\\Recent depends on who looked first)."""
    return ["\\Seen" in f for f in flags(boxes, folder)]


def two_voicemails(boxes) -> set[str]:
    return {boxes.voicemail("alice", "c1"), boxes.voicemail("alice", "c2")}


def test_7_during_a_slow_delete_deletes_only_the_message_heard(boxes):
    """7 after the first message, the MOVE held 1.5 s, 7 again during "one moment please":
    the delete stands and is confirmed; the second 7 finds the gap the first message left
    and gets the message menu. Only the first message is in Trash; the second, never
    presented, stays in Voicemail unseen (the old code deleted it too)."""
    ids = two_voicemails(boxes)
    relay = Relay(boxes.dovecot.imap_port, b" MOVE ", hold=HOLD_CHANGE_S)
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),  # the first message plays to its end
        Press(MENU_WAIT, key="7"),                 # delete: the MOVE is held
        Press(ONE_MOMENT, key="7"),                # 7 again while it is waited for
        Press(MENU_WAIT, key="#"),
    )), relay)
    assert relay.fired == 1 and not phone.rules, phone.commands
    assert phone.streams("^one-moment-please$"), phone.streams()
    assert len(phone.streams(r"/vm-\d+$")) == 1, phone.streams()  # the second: never played
    assert phone.streams("^vm-deleted$") == ["vm-deleted"], phone.streams()
    trash = message_ids(boxes, "Trash")
    kept = message_ids(boxes, "Voicemail")
    assert len(trash) == 1 and len(kept) == 1 and set(trash + kept) == ids, (trash, kept)
    assert seen(boxes, "Voicemail") == [False]  # the second message: still new


def test_6_during_a_slow_delete_presents_the_next_message(boxes):
    """6 during the held MOVE: "deleted", then the message after the deleted one is
    presented (the gap's next), and it is the one left in Voicemail."""
    ids = two_voicemails(boxes)
    relay = Relay(boxes.dovecot.imap_port, b" MOVE ", hold=HOLD_CHANGE_S)
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),
        Press(MENU_WAIT, key="7"),
        Press(ONE_MOMENT, key="6"),
        Press(AUDIO, key="#"),                     # the second message, announced and played
        Press(MENU_WAIT, key="#"),
    )), relay)
    assert relay.fired == 1 and not phone.rules, phone.commands
    assert phone.streams("^vm-deleted$") == ["vm-deleted"], phone.streams()
    assert len(phone.streams(r"/vm-\d+$")) == 2, phone.streams()
    trash = message_ids(boxes, "Trash")
    kept = message_ids(boxes, "Voicemail")
    assert len(trash) == 1 and len(kept) == 1 and set(trash + kept) == ids, (trash, kept)


def test_7_during_a_slow_save_deletes_the_saved_message_not_the_next(boxes):
    """9 on the first message (heard: "saved" waits for its \\Seen, whose STORE is held),
    then 7 during "one moment please": "saved" is said, and 7 deletes the message just
    saved — the one the caller heard — then announces the second, which the caller
    skips with # during its envelope: it stays in Voicemail unseen (the old code deleted
    the second, never announced)."""
    two_voicemails(boxes)
    relay = Relay(boxes.dovecot.imap_port, b" STORE ", hold=HOLD_CHANGE_S)
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),
        Press(MENU_WAIT, key="9"),
        Press(ONE_MOMENT, key="7"),
        Press(ENVELOPE, key="#"),                  # the second one's envelope: skipped
        Press(MENU_WAIT, key="#"),
    )), relay)
    assert relay.fired == 1 and not phone.rules, phone.commands
    said = phone.streams()
    assert said.count("vm-msgsaved") == 1 and said.count("vm-deleted") == 1, said
    assert said.index("vm-msgsaved") < said.index("vm-deleted"), said
    assert len(phone.streams(r"/vm-\d+$")) == 1, said  # the second's audio never played
    assert seen(boxes, "Trash") == [True]       # the saved, heard one
    assert seen(boxes, "Voicemail") == [False]  # the second: still new


# ------------------------------------------------------------------ the machine alone


def listened_to_first(voice: int = 3, *, more: bool = False) -> Menu:
    """The first voicemail played to its end: the message menu, cursor on it."""
    menu = Menu(voice=[f"v{i}" for i in range(voice)], mail=[],
                more={VOICE: more, MAIL: False})
    menu.start()
    menu.feed(Key("1"))
    menu.feed(AudioStarted())
    menu.feed(PlaybackEnded())
    return menu


def change_of(effects: list) -> Act:
    return next(e for e in effects if isinstance(e, Act) and e.what in ("trash", "save",
                                                                          "marked"))


def presented(effects: list) -> list:
    return [e.ref for e in effects if isinstance(e, Present)]


def test_machine_a_key_during_a_delete_finds_the_gap():
    """After the delete's wait was cut: "deleted" is said; 7, 5, 9 find nothing to act on
    (the message menu, no change asked); 6 presents the message after the deleted one, 4
    the one before it (none here: "no more")."""
    for digit in ("7", "5", "9", "3", "8"):
        menu = listened_to_first()
        trash = change_of(menu.feed(Key("7")))
        out = menu.feed(TypedDuringChange(trash.what, trash.folder, trash.ref, digit))
        assert out == [Say("deleted", cut=False), Say("message_menu")], (digit, out)
        assert menu.voice == ["v1", "v2"] and menu.state is State.MESSAGE
    menu = listened_to_first()
    trash = change_of(menu.feed(Key("7")))
    out = menu.feed(TypedDuringChange("trash", VOICE, trash.ref, "6"))
    assert out[0] == Say("deleted", cut=False) and presented(out) == ["v1"], out
    menu = listened_to_first()
    trash = change_of(menu.feed(Key("7")))
    out = menu.feed(TypedDuringChange("trash", VOICE, trash.ref, "4"))
    assert out == [Say("deleted", cut=False), Say("no_more"), Say("message_menu")], out


def test_machine_a_key_during_a_save_acts_on_the_saved_message():
    """After the save's wait was cut: "saved", then 7 deletes the saved message, 5
    repeats it, 6 presents the next: the cursor is on the message the caller heard."""
    menu = listened_to_first()
    saved = change_of(menu.feed(Key("9")))
    out = menu.feed(TypedDuringChange(saved.what, VOICE, saved.ref, "7"))
    assert out[0] == Say("saved", cut=False)
    assert [(e.what, e.ref) for e in out if isinstance(e, Act)] == [("trash", "v0")], out
    menu = listened_to_first()
    saved = change_of(menu.feed(Key("9")))
    out = menu.feed(TypedDuringChange(saved.what, VOICE, saved.ref, "5"))
    assert presented(out) == ["v0"], out
    menu = listened_to_first()
    saved = change_of(menu.feed(Key("9")))
    out = menu.feed(TypedDuringChange(saved.what, VOICE, saved.ref, "6"))
    assert presented(out) == ["v1"], out


def test_machine_a_page_asked_after_the_change_is_asked_again():
    """The dropped effects held the FetchMore of the next page: it was never asked, so
    the machine does not wait for it — 6 at the gap asks for it again."""
    menu = listened_to_first(voice=6, more=True)  # 5 left after the delete: a page asked
    trash = change_of(menu.feed(Key("7")))
    menu.feed(TypedDuringChange("trash", VOICE, trash.ref, "5"))
    assert not menu.asked and menu.waiting is None
    out = menu.feed(Key("6"))
    assert any(isinstance(e, FetchMore) for e in out) and presented(out) == ["v1"], out


def test_machine_a_page_asked_by_a_failed_change_is_asked_again():
    """The same after a change that failed: its FetchMore was dropped with the rest of
    its effects, so the next 6 past the end must ask for the page, not wait for it."""
    menu = listened_to_first(voice=6, more=True)
    trash = change_of(menu.feed(Key("7")))
    assert menu.asked  # the delete's effects asked for the next page
    menu.feed(ActFailed("trash", VOICE, trash.ref))
    assert not menu.asked and menu.waiting is None


def test_machine_4_at_the_gap_of_the_first_message_stays_at_the_gap():
    """The first message deleted, 4 typed during the wait: nothing is before it, so "no
    more" — and the cursor stays at the gap: a 7 or a 9 after it acts on nothing, never on
    the next message, which was not announced."""
    for then in ("7", "9"):
        menu = listened_to_first()
        trash = change_of(menu.feed(Key("7")))
        out = menu.feed(TypedDuringChange(trash.what, trash.folder, trash.ref, "4"))
        assert Say("no_more") in out and not presented(out), out
        out = menu.feed(Key(then))
        assert not any(isinstance(e, Act) for e in out), (then, out)
        assert presented(menu.feed(Key("6"))) == ["v1"]
