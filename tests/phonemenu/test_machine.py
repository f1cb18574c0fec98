"""The menu's key table and state machine, without a call: every key in every state.

What must hold whatever the caller types: every (state, key) pair has an
entry (none falls through to chance), no effect names a phrase the prompt
table cannot say, the cursor never leaves the folder, and a message is
marked seen only after its own audio began (keys during the envelope, and a
hang-up anywhere, mark nothing).
"""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcall.agi import prompts
from mailcall.phonemenu.keymap import INPUTS, KEYS, TABLE, TIMEOUT, Op, State, lookup
from mailcall.phonemenu.machine import (
    CHANGES,
    MAIL,
    MAX_INVALID,
    MAX_TIMEOUTS,
    PHRASES,
    VOICE,
    Act,
    ActFailed,
    AudioStarted,
    End,
    Greeting,
    Hangup,
    Key,
    Menu,
    PlaybackEnded,
    Present,
    Say,
    Setting,
    Timeout,
    Unplayable,
)


class Msg:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


def menu(voice: int = 3, mail: int = 2) -> Menu:
    return Menu(voice=[Msg(f"v{i}") for i in range(voice)],
                mail=[Msg(f"m{i}") for i in range(mail)])


def acts(effects, what=None):
    return [(e.what, e.ref.name) for e in effects
            if isinstance(e, Act) and (what is None or e.what == what)]


def presented(effects):
    return [e.ref.name for e in effects if isinstance(e, Present)]


def listen(m: Menu, *, hear: bool = True):
    m.start()
    out = m.feed(Key("1"))
    if hear:
        m.feed(AudioStarted())
    return out


# ------------------------------------------------------------------ the table


def test_every_state_has_every_key_and_the_timeout():
    for state, key in itertools.product(State, INPUTS):
        assert (state, key) in TABLE, (state, key)
    assert len(TABLE) == len(State) * len(INPUTS)


def test_the_voicemailmain_keys_mean_what_its_users_expect():
    expected = {"1": Op.LISTEN, "4": Op.PREVIOUS, "5": Op.REPEAT, "6": Op.NEXT,
                "7": Op.DELETE, "9": Op.SAVE, "3": Op.ADVANCED_MENU, "8": Op.FORWARD,
                "0": Op.OPTIONS_MENU, "*": Op.HELP, "#": Op.GOODBYE}
    for key, op in expected.items():
        assert lookup(State.MESSAGE, key)[0] is op, key
    assert lookup(State.PLAYING, "#") == (Op.SKIP, State.MESSAGE)
    assert {k: lookup(State.ADVANCED, k)[0] for k in "123"} == {
        "1": Op.REPLY, "2": Op.CALL_BACK, "3": Op.ENVELOPE}
    assert lookup(State.MAIN, "1")[0] is Op.LISTEN
    assert lookup(State.MAIN, "#") == (Op.GOODBYE, State.DONE)


@pytest.mark.parametrize(("state", "key"), list(itertools.product(
    [s for s in State if s is not State.DONE], INPUTS)))
def test_every_key_in_every_state_gives_something_sayable(state, key):
    """From each state, each input: effects that the handler can carry out, and the
    phrases all in the prompt tables (stock or generated)."""
    m = menu()
    m.start()
    # reach `state`
    if state is State.PLAYING:
        m.feed(Key("1"))
    elif state is State.MESSAGE:
        m.feed(Key("1"))
        m.feed(PlaybackEnded())
    elif state is State.ADVANCED:
        m.feed(Key("1"))
        m.feed(Key("3"))
    elif state is State.OPTIONS:
        m.feed(Key("0"))
    assert m.state is state
    effects = m.feed(Timeout() if key == TIMEOUT else Key(key))
    assert effects, (state, key)
    sayable = set(prompts.MENU_PHRASES) | set(prompts.MENU_TEXTS) | {
        "counts", "folder_voice", "folder_mail", "empty_folder"}
    for effect in effects:
        assert isinstance(effect, Say | Present | Act | Greeting | Setting | End), effect
        if isinstance(effect, Say):
            assert effect.phrase in PHRASES and effect.phrase in sayable, effect
    assert 0 <= m.index <= max(len(m.items()) - 1, 0)


def test_every_phrase_can_be_said():
    sayable = set(prompts.MENU_PHRASES) | set(prompts.MENU_TEXTS) | {
        "counts", "folder_voice", "folder_mail", "empty_folder"}
    assert set(PHRASES) <= sayable


# ------------------------------------------------------------------ listening


def test_start_says_the_counts_then_the_main_menu():
    m = menu()
    assert m.start() == [Say("counts", VOICE, 3), Say("counts", MAIL, 2), Say("main_menu")]


def test_listen_next_previous_repeat_walk_the_folder():
    m = menu()
    assert presented(listen(m)) == ["v0"]
    assert presented(m.feed(Key("6"))) == ["v1"]
    assert presented(m.feed(Key("6"))) == ["v2"]
    out = m.feed(Key("6"))  # past the last
    assert out[-2:] == [Say("no_more"), Say("message_menu")] and m.state is State.MESSAGE
    assert presented(m.feed(Key("4"))) == ["v1"]
    assert presented(m.feed(Key("5"))) == ["v1"]
    m.feed(Key("4"))
    out = m.feed(Key("4"))  # before the first
    assert Say("no_more") in out and m.index == 0


def test_a_message_heard_to_the_end_is_marked_seen_once():
    m = menu()
    listen(m)
    assert acts(m.feed(PlaybackEnded())) == [("seen", "v0")]
    assert m.state is State.MESSAGE
    m.feed(Key("5"))
    m.feed(AudioStarted())
    assert acts(m.feed(PlaybackEnded())) == []  # already marked in this call


def test_a_key_during_the_envelope_marks_nothing():
    m = menu()
    listen(m, hear=False)
    out = m.feed(Key("6"))
    assert acts(out) == [] and presented(out) == ["v1"]


def test_a_key_during_the_audio_marks_it_heard_first():
    m = menu()
    listen(m)
    out = m.feed(Key("6"))
    assert acts(out) == [("seen", "v0")] and presented(out) == ["v1"]
    assert out.index(next(e for e in out if isinstance(e, Act))) < out.index(
        next(e for e in out if isinstance(e, Present)))


def test_hangup_anywhere_marks_nothing_and_ends():
    for steps in ([], [Key("1")], [Key("1"), AudioStarted()], [Key("0")]):
        m = menu()
        m.start()
        for step in steps:
            m.feed(step)
        assert m.feed(Hangup()) == []
        assert m.done and m.feed(Key("1")) == [] and m.feed(PlaybackEnded()) == []


def test_delete_moves_to_trash_and_goes_on_with_the_next():
    m = menu()
    listen(m, hear=False)
    out = m.feed(Key("7"))
    assert acts(out) == [("trash", "v0")] and Say("deleted", cut=False) in out
    assert presented(out) == ["v1"] and [x.name for x in m.voice] == ["v1", "v2"]


def test_deleting_the_last_messages_goes_back_to_the_main_menu():
    m = menu(voice=1)
    listen(m)
    out = m.feed(Key("7"))
    assert acts(out) == [("seen", "v0"), ("trash", "v0")]
    assert out[-2:] == [Say("empty_folder", VOICE), Say("main_menu")]
    assert m.state is State.MAIN and m.voice == []
    assert m.feed(Key("1"))[-1] == Say("main_menu")  # nothing to listen to


def test_save_keeps_it_seen_then_the_next():
    m = menu()
    listen(m, hear=False)
    m.feed(Key("#"))  # skip to the menu: not heard
    out = m.feed(Key("9"))
    assert acts(out) == [("save", "v0")] and Say("saved", cut=False) in out
    assert presented(out) == ["v1"]


def test_hash_while_playing_skips_to_the_message_menu_and_hash_there_exits():
    m = menu()
    listen(m)
    assert m.feed(Key("#"))[-1] == Say("message_menu") and m.state is State.MESSAGE
    out = m.feed(Key("#"))
    assert out == [Say("goodbye"), End()] and m.done


def test_folder_switch_reads_mail_newest_first_as_given():
    m = menu()
    m.start()
    out = m.feed(Key("2"))
    assert out[0] == Say("folder_mail", MAIL, 2, cut=False) and presented(out) == ["m0"]
    m.feed(AudioStarted())
    assert acts(m.feed(PlaybackEnded())) == [("seen", "m0")]
    assert acts(m.feed(Key("7"))) == [("trash", "m0")]


def test_unplayable_message_moves_on_and_marks_nothing():
    m = menu()
    listen(m)
    out = m.feed(Unplayable())
    assert acts(out) == [] and presented(out) == ["v1"]
    m.feed(Key("6"))
    m.feed(Key("6"))
    m.state = State.PLAYING
    assert m.feed(Unplayable())[-2:] == [Say("no_more"), Say("message_menu")]


def test_advanced_menu_actions_then_back_to_the_message_menu():
    m = menu()
    listen(m)
    m.feed(PlaybackEnded())
    for key, what in (("1", "reply"), ("2", "call_back"), ("3", "envelope")):
        assert m.feed(Key("3")) == [Say("advanced_menu")]
        out = m.feed(Key(key))
        assert acts(out) == [(what, "v0")] and out[-1] == Say("message_menu")
        assert m.state is State.MESSAGE
    m.feed(Key("3"))
    assert m.feed(Key("*")) == [Say("message_menu")]
    assert acts(m.feed(Key("8"))) == [("forward", "v0")]


def test_options_record_greetings_change_the_pin_and_set_an_absence():
    m = menu()
    m.start()
    assert m.feed(Key("0")) == [Say("options_menu")]
    assert m.feed(Key("2")) == [Greeting("busy"), Say("main_menu")]
    m.feed(Key("0"))
    assert m.feed(Key("4")) == [Setting("pin"), Say("options_menu")]
    assert m.state is State.OPTIONS  # the dialog over, the options are said again
    assert m.feed(Key("5")) == [Setting("absence"), Say("options_menu")]
    assert m.feed(Key("*")) == [Say("main_menu")] and m.state is State.MAIN


def test_silence_says_the_menu_again_then_goodbye():
    m = menu()
    m.start()
    for _ in range(MAX_TIMEOUTS - 1):
        assert m.feed(Timeout()) == [Say("main_menu")]
    assert m.feed(Timeout()) == [Say("goodbye"), End()]


def test_a_flood_of_invalid_keys_ends_the_call():
    m = menu()
    m.start()
    for _ in range(MAX_INVALID - 1):
        assert m.feed(Key("9"))[0] == Say("invalid")
    assert m.feed(Key("9")) == [Say("goodbye"), End()]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(KEYS).map(Key), st.just(Timeout()),
                          st.just(AudioStarted()), st.just(PlaybackEnded()),
                          st.just(Unplayable()), st.just("fail")), max_size=80),
       st.integers(0, 4), st.integers(0, 3))
def test_any_sequence_keeps_the_cursor_inside_and_marks_only_what_was_heard(events, nv, nm):
    """"fail": the last change asked for failed (ActFailed): its message is back."""
    m = menu(nv, nm)
    m.start()
    started: set[int] = set()
    trashed: set[int] = set()
    out: list = []
    for event in events:
        if event == "fail":
            last = next((e for e in reversed(out) if isinstance(e, Act)
                         and e.what in CHANGES), None)
            if last is None:
                continue
            event = ActFailed(last.what, last.folder, last.ref)
            trashed.discard(id(last.ref))
        current = m.current
        if isinstance(event, AudioStarted) and m.state is State.PLAYING and current is not None:
            started.add(id(current))
        out = m.feed(event)
        for effect in out:
            if isinstance(effect, Act) and effect.what == "seen":
                assert id(effect.ref) in started, "marked seen without its audio"
            if isinstance(effect, Act) and effect.what == "trash":
                assert id(effect.ref) not in trashed
                trashed.add(id(effect.ref))
        if isinstance(event, Key | Timeout | PlaybackEnded | Unplayable) and not out:
            assert m.done or isinstance(event, PlaybackEnded | Unplayable)
        assert m.current is None or m.current in m.items()
        if isinstance(event, ActFailed):
            assert any(r is event.ref for r in m.items(event.folder))
            assert out in ([Say("message_menu")], [Say("main_menu")]), out
        if m.done:
            break


# ------------------------------------------------------------------ the docs


def _doc_keys(heading: str) -> set[str]:
    """Keys listed in the docs/phone-menu.md table that starts with `heading`."""
    from tests.conftest import REPO

    text = (REPO / "docs" / "phone-menu.md").read_text()
    table = text.split(f"| {heading} |", 1)[1].split("\n\n", 1)[0]
    return {m.replace("\\", "") for m in re.findall(r"^\| \*\*(.+?)\*\* \|", table, re.M)}


@pytest.mark.parametrize(("heading", "state"), [
    ("Main menu", State.MAIN), ("Menu principal", State.MAIN),
    ("During or after a message", State.MESSAGE),
    ("Pendant ou après un message", State.MESSAGE)])
def test_the_employee_docs_list_exactly_the_keys_that_do_something(heading, state):
    doing = {k for k in KEYS if lookup(state, k)[0] is not Op.INVALID}
    assert _doc_keys(heading) == doing


def test_no_key_is_listened_for_between_an_action_and_the_next_message():
    """A key typed during "deleted" or "saved" would act on a message not yet announced:
    those confirmations, and the other folder's count, cannot be cut."""
    for keys in (("7",), ("9",), ("2",)):
        m = menu()
        listen(m)
        out = m.feed(Key(keys[0]))
        before = out[:out.index(next(e for e in out if isinstance(e, Present)))]
        assert all(not e.cut for e in before if isinstance(e, Say)), out


# ------------------------------------------------------------------ a change that failed


def test_a_failed_delete_puts_the_message_back_and_confirms_nothing():
    """The move to Trash failed (call.py feeds ActFailed; the apology was said): the
    rest of that transition ("deleted", the next message) was dropped, and the message
    is where it was, so 5 repeats it and 7 tries the delete again."""
    m = menu(voice=3)
    listen(m)
    m.feed(PlaybackEnded())
    out = m.feed(Key("7"))
    assert acts(out) == [("trash", "v0")] and Say("deleted", cut=False) in out
    assert [r.name for r in m.voice] == ["v1", "v2"]
    assert m.feed(ActFailed("trash", VOICE, out[0].ref)) == [Say("message_menu")]
    assert [r.name for r in m.voice] == ["v0", "v1", "v2"]
    assert m.state is State.MESSAGE and m.current.name == "v0"
    assert presented(m.feed(Key("5"))) == ["v0"]
    m.feed(AudioStarted())
    assert acts(m.feed(Key("7")), "trash") == [("trash", "v0")]


def test_a_failed_save_or_seen_is_not_counted_as_marked():
    """A failed \\Seen leaves the message unmarked in this call: the next time it is
    heard, it is marked again; a failed save stays on the message."""
    m = menu(voice=2)
    listen(m)
    out = m.feed(PlaybackEnded())
    assert acts(out) == [("seen", "v0")]
    assert m.feed(ActFailed("seen", VOICE, out[0].ref)) == [Say("message_menu")]
    m.feed(Key("5"))
    m.feed(AudioStarted())
    assert acts(m.feed(PlaybackEnded())) == [("seen", "v0")]
    m = menu(voice=2)
    listen(m, hear=False)  # 9 during the envelope: kept, marked \\Seen
    out = m.feed(Key("9"))
    assert acts(out) == [("save", "v0")] and m.current.name == "v1"
    assert m.feed(ActFailed("save", VOICE, out[0].ref)) == [Say("message_menu")]
    assert m.current.name == "v0" and m.state is State.MESSAGE
    assert acts(m.feed(Key("9"))) == [("save", "v0")]
