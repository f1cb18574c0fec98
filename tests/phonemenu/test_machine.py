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
    PAGE_AHEAD,
    PHRASES,
    VOICE,
    Act,
    ActFailed,
    AudioStarted,
    End,
    FetchMore,
    Greeting,
    Hangup,
    Key,
    Menu,
    MoreListed,
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


def menu(voice: int = 3, mail: int = 2, *, more: bool = False) -> Menu:
    """Both lists whole (the store listed everything) unless `more`."""
    return Menu(voice=[Msg(f"v{i}") for i in range(voice)],
                mail=[Msg(f"m{i}") for i in range(mail)], more={VOICE: more, MAIL: more})


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
    assert m.feed(Key("5")) == [Setting("pin"), Say("options_menu")]
    assert m.state is State.OPTIONS  # the dialog over, the options are said again
    assert m.feed(Key("3")) == [Setting("absence"), Say("options_menu")]
    assert m.feed(Key("4")) == [Greeting("absence"), Say("main_menu")]
    m.feed(Key("0"))
    assert m.feed(Key("*")) == [Say("main_menu")] and m.state is State.MAIN


def test_the_options_keys_are_voicemailmains():
    """app_voicemail.c vm_options(): 1 unavailable, 2 busy, 3 record name, 4 temporary
    greeting, 5 change password. mailcall has no recorded name; its absence greeting is
    VoiceMailMain's temporary one, so 4 and 5 mean what its users expect, and 3 (the
    name) holds the absence itself."""
    assert {k: lookup(State.OPTIONS, k)[0] for k in "12345"} == {
        "1": Op.GREETING_UNAVAILABLE, "2": Op.GREETING_BUSY, "3": Op.ABSENCE,
        "4": Op.GREETING_ABSENCE, "5": Op.CHANGE_PIN}


def test_the_spoken_options_menu_says_the_keys_of_the_table():
    """What the options menu says (generated in both languages) names each key for what
    the table does with it, and never the stock vm-options, whose "press 3 to record
    your name" is a key mailcall does not have."""
    said = {"en": {"1": "unavailable greeting", "2": "busy greeting", "3": "absence",
                   "4": "absence greeting", "5": "PIN"},
            "fr": {"1": "indisponibilité", "2": "occupation", "3": "absence",
                   "4": "annonce d'absence", "5": "code"}}
    for lang, keys in said.items():
        text = prompts.MENU_TEXTS["options_menu"][lang]
        clauses = re.split(r"[.;] ", text)
        for key, words in keys.items():
            [clause] = [c for c in clauses if re.search(rf"\b{key}\b", c)]
            assert words in clause, (lang, key, clause)
        assert "name" not in text and "nom" not in text
    assert "vm-options" not in prompts.MENU_PHRASES.get("options_menu", ())
    assert "options_menu" not in prompts.MENU_PHRASES  # generated, not vm-options
    from mailcall.phonemenu.saying import FALLBACK
    assert "vm-options" not in FALLBACK["options_menu"]


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
    ("Pendant ou après un message", State.MESSAGE),
    ("Options (key 0)", State.OPTIONS), ("Options (touche 0)", State.OPTIONS)])
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


# ------------------------------------------------------------------ pages


def fetches(effects):
    return [(e.folder, e.wait) for e in effects if isinstance(e, FetchMore)]


def test_near_the_end_of_a_page_the_next_one_is_asked_for_in_the_background():
    """PAGE_AHEAD messages before the end of what was listed, once per page, and before
    the Present (a key cuts what follows it)."""
    m = menu(voice=PAGE_AHEAD + 3, more=True)
    out = listen(m)
    assert fetches(out) == []
    for _ in range(2):
        out = m.feed(Key("6"))
        assert fetches(out) == []
    out = m.feed(Key("6"))  # 3 of 8: 5 left
    assert fetches(out) == [(VOICE, False)] and isinstance(out[-1], Present)
    assert out.index(FetchMore(VOICE)) < out.index(out[-1])
    assert fetches(m.feed(Key("6"))) == []  # asked once
    page = tuple(Msg(f"p{i}") for i in range(3))
    assert m.feed(MoreListed(VOICE, page, more=True)) == []  # appended, the cursor stays
    assert [r.name for r in m.voice][-4:] == ["v7", "p0", "p1", "p2"]
    assert m.current.name == "v4"


def test_next_past_the_end_waits_for_the_page_and_moves_into_it():
    m = menu(voice=2, more=True)
    assert fetches(listen(m)) == [(VOICE, False)]  # 2 listed: within PAGE_AHEAD at once
    out = m.feed(Key("6"))
    assert fetches(out) == [] and presented(out) == ["v1"]
    m.feed(AudioStarted())
    out = m.feed(Key("6"))  # past the end: the page is waited for
    assert out == [Act("seen", VOICE, m.voice[1]), FetchMore(VOICE, wait=True)]
    assert m.current is None
    out = m.feed(MoreListed(VOICE, (Msg("p0"), Msg("p1")), more=False))
    assert presented(out) == ["p0"] and m.state is State.PLAYING
    m.feed(AudioStarted())
    assert presented(m.feed(Key("4"))) == ["v1"]  # previous: back into the first page
    assert presented(m.feed(Key("6"))) == ["p0"]
    m.feed(Key("6"))
    assert m.feed(Key("6")) == [Say("no_more"), Say("message_menu")]  # nothing more
    assert m.current.name == "p1"


def test_a_page_with_nothing_more_says_no_more_and_keeps_the_last_message():
    m = menu(voice=1, more=True)
    listen(m, hear=False)
    assert m.feed(Key("6")) == [FetchMore(VOICE, wait=True)]
    assert m.feed(MoreListed(VOICE, (), more=False)) == [Say("no_more"), Say("message_menu")]
    assert m.current.name == "v0" and m.state is State.MESSAGE
    assert m.feed(Key("6")) == [Say("no_more"), Say("message_menu")]  # not asked again


def test_a_page_that_failed_appends_nothing_and_6_asks_again():
    m = menu(voice=1, more=True)
    listen(m, hear=False)
    m.feed(Key("6"))
    assert m.feed(MoreListed(VOICE, failed=True)) == [Say("message_menu")]
    assert m.current.name == "v0" and m.more[VOICE]
    assert m.feed(Key("6")) == [FetchMore(VOICE, wait=True)]


def test_save_and_delete_at_the_end_move_into_the_next_page():
    m = menu(voice=1, more=True)
    listen(m, hear=False)
    out = m.feed(Key("9"))
    assert acts(out) == [("save", "v0")] and out[-1] == FetchMore(VOICE, wait=True)
    assert presented(m.feed(MoreListed(VOICE, (Msg("p0"),), more=True))) == ["p0"]
    m.feed(AudioStarted())
    out = m.feed(Key("7"))
    assert acts(out, "trash") == [("trash", "p0")] and out[-1] == FetchMore(VOICE, wait=True)
    assert presented(m.feed(MoreListed(VOICE, (Msg("p1"),), more=False))) == ["p1"]


def test_an_empty_page_after_everything_was_deleted_goes_back_to_the_main_menu():
    m = menu(voice=1, more=True)
    listen(m)
    out = m.feed(Key("7"))
    assert out[-1] == FetchMore(VOICE, wait=True)
    assert m.feed(MoreListed(VOICE, (), more=False)) == [Say("empty_folder", VOICE),
                                                         Say("main_menu")]
    assert m.state is State.MAIN


def test_the_mail_folder_pages_the_same_way():
    m = menu(voice=0, mail=1, more=True)
    m.start()
    out = m.feed(Key("2"))
    assert fetches(out) == [(MAIL, False)] and presented(out) == ["m0"]
    assert m.feed(Key("6")) == [FetchMore(MAIL, wait=True)]
    assert presented(m.feed(MoreListed(MAIL, (Msg("m1"),), more=False))) == ["m1"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(KEYS).map(Key), st.just(AudioStarted()),
                          st.just(PlaybackEnded()), st.just(Unplayable())), max_size=80),
       st.lists(st.tuples(st.integers(0, 3), st.booleans(), st.booleans()), max_size=10),
       st.integers(0, 3), st.integers(0, 2))
def test_paged_folders_keep_the_cursor_inside_and_list_nothing_twice(events, pages, nv, nm):
    """Any keys with pages arriving (in the background, or waited for past the end, as
    call.py feeds them): the cursor stays on a listed message or waits for a page; no
    message is listed twice; "no more" only once the folder has said it has no more."""
    m = menu(nv, nm, more=True)
    m.start()
    made = itertools.count()
    pending = list(pages)

    def page(folder: str) -> MoreListed:
        n, more, failed = pending.pop(0) if pending else (0, False, False)
        refs = tuple(Msg(f"p{next(made)}") for _ in range(n))
        return MoreListed(folder, refs, more=more, failed=failed)

    out: list = m.feed(Key("1"))
    for event in events:
        while out and out[-1] == FetchMore(m.folder, wait=True):
            assert m.waiting == m.folder and m.current is None
            out = m.feed(page(m.folder))  # the effect's own event
        if m.done:
            break
        for folder in list(m.asked):
            if m.waiting is None and pending and pending[0][1]:  # a background page came
                m.feed(page(folder))
        if Say("no_more") in out:
            assert not m.more[m.folder] or m.index + 1 < len(m.items()) or m.index == 0
        for folder in (VOICE, MAIL):
            names = [r.name for r in m.items(folder)]
            assert len(names) == len(set(names)), names
        assert m.current is None or m.current in m.items()
        out = m.feed(event)
