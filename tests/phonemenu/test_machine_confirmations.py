"""The machine's side of two confirmations: a key typed while a page is waited for acts
where the caller is, and "saved" waits for the flag it confirms (call.py carries these
out against the real Dovecot in test_paging.py and test_saved_waits.py)."""

from __future__ import annotations

from mailcall.phonemenu.keymap import State
from mailcall.phonemenu.machine import (
    VOICE,
    Act,
    ActFailed,
    AudioStarted,
    FetchMore,
    Key,
    MoreListed,
    PlaybackEnded,
    Present,
    Say,
)

from .test_machine import Msg, acts, listen, menu, presented


def test_a_key_typed_while_the_page_was_waited_for_acts_on_the_message_heard():
    """6 past the end, a key cuts "one moment please": the page is appended, nothing is
    presented, and the key (fed next by call.py) acts on the message last heard — 7
    trashes it, not the page's first message, which was never announced."""
    m = menu(voice=2, more=True)
    listen(m)
    m.feed(Key("6"))
    m.feed(AudioStarted())
    assert m.feed(Key("6"))[-1] == FetchMore(VOICE, wait=True)
    page = (Msg("p0"), Msg("p1"))
    assert m.feed(MoreListed(VOICE, page, more=False, typed="7")) == []
    assert m.state is State.MESSAGE and m.current.name == "v1"
    assert [r.name for r in m.voice] == ["v0", "v1", "p0", "p1"]
    out = m.feed(Key("7"))
    assert acts(out, "trash") == [("trash", "v1")] and presented(out) == ["p0"]


def test_a_key_typed_while_the_page_was_waited_for_then_6_announces_the_page():
    m = menu(voice=1, more=True)
    listen(m, hear=False)
    assert m.feed(Key("6")) == [FetchMore(VOICE, wait=True)]
    assert m.feed(MoreListed(VOICE, (Msg("p0"),), more=False, typed="6")) == []
    out = m.feed(Key("6"))
    assert presented(out) == ["p0"] and not acts(out)  # v0's audio never began: unmarked


def test_a_key_typed_while_an_empty_listing_was_waited_for_acts_in_the_main_menu():
    m = menu(voice=1, more=True)
    listen(m)
    m.feed(Key("7"))  # the only message deleted: the next page is waited for
    assert m.feed(MoreListed(VOICE, (Msg("p0"),), more=False, typed="1")) == []
    assert m.state is State.MAIN
    assert presented(m.feed(Key("1"))) == ["p0"]


def test_save_of_a_message_already_marked_heard_waits_for_that_mark():
    """The message played to its end (its \\Seen queued in the background), then 9:
    "saved" comes after an ``Act("marked")`` that waits for the flag; if it fails, the
    transition is undone, and "saved" was never said."""
    m = menu(voice=2)
    listen(m)
    assert acts(m.feed(PlaybackEnded())) == [("seen", "v0")]
    out = m.feed(Key("9"))
    assert out[:2] == [Act("marked", VOICE, m.voice[0]), Say("saved", cut=False)]
    assert presented(out) == ["v1"]
    assert m.feed(ActFailed("marked", VOICE, m.voice[0])) == [Say("message_menu")]
    assert m.state is State.MESSAGE and m.current.name == "v0"
    assert m.feed(Key("9"))[0] == Act("marked", VOICE, m.voice[0])  # asked again


def test_save_during_the_audio_is_one_waited_save_not_a_background_mark():
    m = menu(voice=2)
    listen(m)  # the audio began
    out = m.feed(Key("9"))
    assert acts(out) == [("save", "v0")]
    assert out.index(Say("saved", cut=False)) == 1
    assert isinstance(out[-1], Present)
