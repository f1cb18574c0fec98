"""The PIN and absence dialogs of the options (0, then 5 or 3), without a call.

Both are tables like the menu's key table (phonemenu/keymap.py): every (step,
input) they can meet has an entry, nothing is saved before everything was
typed, three failed tries end the dialog with nothing saved, and the PIN
never shows in a repr. The date typed as DDMM is the last day away, in the
next year where it is today or later.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcall.agi import prompts
from mailcall.core.policy.load import compile_text
from mailcall.core.policy.model import Absence
from mailcall.phonemenu import absence_by_phone as ab
from mailcall.phonemenu import dialog as settings_dialog
from mailcall.phonemenu import pin_by_phone as pb
from mailcall.phonemenu import words
from mailcall.phonemenu.dialog import DIALOG_TRIES, Typed, clean

from .support import menu_policy_text

TODAY = date(2026, 12, 1)
EXTENSIONS = {"202": "bernard", "203": "carole", "200": "@reception"}


def typed(digits: str) -> Typed:
    return Typed(digits)


SILENT = Typed("", silent=True)


def said(out) -> list[str]:
    return [o.phrase for o in out if isinstance(o, ab.Tell | pb.Tell)]


def every_phrase_is_sayable(out) -> None:
    for o in out:
        if isinstance(o, ab.Tell | pb.Tell | ab.Ask | pb.Ask):
            assert o.phrase in prompts.MENU_PHRASES or o.phrase in prompts.MENU_TEXTS, o


# ------------------------------------------------------------------ the entry


def test_what_is_typed_is_digits_up_to_the_hash_only():
    assert clean("1212#99") == "1212"
    assert clean("20;2") == "202" and clean("../../x") == ""
    assert clean("*") == "*"


# ------------------------------------------------------------------ PIN


def test_pin_new_twice_then_saved():
    d = pb.PinDialog()
    assert d.start() == [pb.Ask("pin_new", pb.ENTRY_DIGITS)]
    assert d.typed(typed("135791")) == [pb.Ask("pin_again", pb.ENTRY_DIGITS)]
    out = d.typed(typed("135791"))
    assert out == [pb.Save("135791")] and d.step is pb.Step.SAVE
    assert d.saved(pb.Input.SAVED) == [pb.Tell("pin_changed")] and d.done


@pytest.mark.parametrize("pin", ["123", "1234567890123", ""])
def test_a_pin_of_the_wrong_length_is_refused_with_the_rule(pin):
    d = pb.PinDialog()
    d.start()
    out = d.typed(typed(pin))
    assert said(out) == ["pin_invalid", "pin_rules"] and out[-1] == pb.Ask("pin_new", 13)
    assert d.tries == 1


def test_a_mismatch_starts_again_and_three_failures_save_nothing():
    d = pb.PinDialog()
    d.start()
    outs = []
    for _ in range(3):
        d.typed(typed("1111"))
        outs.append(d.typed(typed("2222")))
    assert said(outs[0]) == ["pin_mismatch"] and outs[0][-1] == pb.Ask("pin_new", 13)
    assert said(outs[-1]) == ["pin_mismatch", "nothing_saved"] and d.done
    assert not any(isinstance(o, pb.Save) for out in outs for o in out)


def test_star_gives_up_and_silence_asks_again():
    d = pb.PinDialog()
    d.start()
    assert d.typed(SILENT) == [pb.Ask("pin_new", 13)]
    d.typed(typed("4321"))
    assert d.typed(SILENT) == [pb.Ask("pin_again", 13)]
    assert d.typed(typed("*")) == [pb.Tell("nothing_saved")] and d.done


@pytest.mark.parametrize(("outcome", "phrase"), [(pb.Input.REFUSED, "pin_refused"),
                                                 (pb.Input.FAILED, "settings_unavailable")])
def test_a_store_that_refuses_or_fails_is_said(outcome, phrase):
    d = pb.PinDialog()
    d.start()
    d.typed(typed("4321"))
    d.typed(typed("4321"))
    assert d.saved(outcome) == [pb.Tell(phrase)] and d.done


def test_the_pin_is_never_in_a_repr():
    d = pb.PinDialog()
    d.start()
    d.typed(typed("97531"))
    assert "97531" not in repr(d) and "97531" not in repr(typed("97531"))
    [save] = d.typed(typed("97531"))
    assert "97531" not in repr(save) and save.pin == "97531"
    assert "97531" not in repr(d)


def test_every_pin_input_of_every_step_is_in_the_table():
    samples = [typed("1234"), typed("12"), SILENT, typed("*"), typed("99999")]
    for step in (pb.Step.NEW, pb.Step.AGAIN):
        for sample in samples:
            assert (step, pb.classify(step, sample, "1234")) in pb.TABLE
    for outcome in (pb.Input.SAVED, pb.Input.REFUSED, pb.Input.FAILED):
        assert (pb.Step.SAVE, outcome) in pb.TABLE
    for said_, _after, _costs in pb.TABLE.values():
        every_phrase_is_sayable([pb.Tell(p) for p in said_])


# ------------------------------------------------------------------ the date


@pytest.mark.parametrize(("digits", "today", "expected"), [
    ("1212", TODAY, date(2026, 12, 12)),
    ("0112", TODAY, date(2026, 12, 1)),           # today: absent to the end of the day
    ("3011", TODAY, date(2027, 11, 30)),          # already past this year: next year's
    ("0501", TODAY, date(2027, 1, 5)),
    ("3112", date(2026, 12, 31), date(2026, 12, 31)),
    ("2902", date(2027, 3, 1), date(2028, 2, 29)),  # the next 29 February, within a year
    ("3102", TODAY, ab.Input.NOT_A_DATE),
    ("2902", TODAY, ab.Input.NOT_A_DATE),         # none in 2027
    ("0013", TODAY, ab.Input.NOT_A_DATE),
    ("0000", TODAY, ab.Input.NOT_A_DATE),
    ("121", TODAY, ab.Input.FOUR_DIGITS),
    ("", TODAY, ab.Input.FOUR_DIGITS),
])
def test_ddmm_is_the_next_such_day_today_or_later(digits, today, expected):
    assert ab.last_day(digits, today) == expected


# ------------------------------------------------------------------ absence


def dialog(backups: bool = True) -> ab.AbsenceDialog:
    return ab.AbsenceDialog(today=TODAY, find=EXTENSIONS.get, backups=backups)


def test_absence_date_then_backup_then_saved():
    d = dialog()
    assert d.start() == [ab.Ask("absence_until", 4)]
    assert d.typed(typed("1212")) == [ab.Ask("absence_backup", ab.BACKUP_DIGITS)]
    assert d.typed(typed("202")) == [ab.Save(date(2026, 12, 12), "bernard")]
    assert d.answered(ab.Input.SAVED) == [] and d.done


def test_both_dialogs_step_their_tables_with_the_one_stepper_and_count():
    """One stepper (phonemenu/dialog.py) and one count of tries: none of their own."""
    for module in (ab, pb):
        assert not hasattr(module, "MAX_TRIES")
        assert module.table_step is settings_dialog.table_step
    # "three wrong entries in a row": a right date clears the wrong ones before it...
    d = dialog()
    d.start()
    d.typed(typed("3102"))
    d.typed(typed("3102"))
    assert d.typed(typed("1212")) == [ab.Ask("absence_backup", ab.BACKUP_DIGITS)]
    assert d.tries == 0
    d.typed(typed("999"))
    assert d.typed(typed("999"))[-1] == ab.Ask("absence_backup", ab.BACKUP_DIGITS)
    # ...but a first PIN is right only once the second matches: mismatches still count.
    p = pb.PinDialog()
    p.start()
    for n in range(1, DIALOG_TRIES):
        p.typed(typed("1111"))
        p.typed(typed("2222"))
        assert p.tries == n
    p.typed(typed("1111"))
    assert p.typed(typed("2222"))[-1] == pb.Tell("nothing_saved") and p.done


def test_a_lone_hash_is_no_backup_and_a_group_extension_is_the_group():
    d = dialog()
    d.start()
    d.typed(typed("1212"))
    assert d.typed(typed("")) == [ab.Save(date(2026, 12, 12), None)]
    d = dialog()
    d.start()
    d.typed(typed("0501"))
    assert d.typed(typed("200")) == [ab.Save(date(2027, 1, 5), "@reception")]


def test_without_backups_in_the_profile_the_question_is_not_asked_and_said_why():
    d = dialog(backups=False)
    d.start()
    out = d.typed(typed("1212"))
    assert out == [ab.Tell("absence_backup_by_it"), ab.Save(date(2026, 12, 12), None)]


def test_an_invalid_date_is_refused_with_its_reason_and_asked_again_three_times_at_most():
    d = dialog()
    d.start()
    first = d.typed(typed("3102"))
    assert first == [ab.Tell("absence_not_a_date"), ab.Ask("absence_until", 4)]
    second = d.typed(typed("12"))
    assert second == [ab.Tell("absence_four_digits"), ab.Ask("absence_until", 4)]
    third = d.typed(typed("3102"))
    assert third == [ab.Tell("absence_not_a_date"), ab.Tell("nothing_saved")] and d.done


def test_an_unknown_extension_is_said_and_asked_again():
    d = dialog()
    d.start()
    d.typed(typed("1212"))
    out = d.typed(typed("999"))
    assert out == [ab.Tell("not_an_extension"), ab.Ask("absence_backup", ab.BACKUP_DIGITS)]
    assert d.typed(typed("203")) == [ab.Save(date(2026, 12, 12), "carole")]


def test_star_gives_up_at_any_question():
    for steps in ([], ["1212"]):
        d = dialog()
        d.start()
        for s in steps:
            d.typed(typed(s))
        assert d.typed(typed("*")) == [ab.Tell("nothing_saved")] and d.done


@pytest.mark.parametrize(("outcome", "phrases"), [
    (ab.Input.BACKUP_REFUSED, ["absence_backup_refused", "nothing_saved"]),
    (ab.Input.OVERLAPS, ["absence_overlaps", "nothing_saved"]),
    (ab.Input.REFUSED, ["nothing_saved"]),
    (ab.Input.FAILED, ["settings_unavailable"]),
])
def test_what_the_store_answers_is_said(outcome, phrases):
    d = dialog()
    d.start()
    d.typed(typed("1212"))
    d.typed(typed("202"))
    assert said(d.answered(outcome)) == phrases and d.done


def test_an_absence_set_is_said_and_can_be_ended_or_kept():
    stored = SimpleNamespace(id=7)
    shown = Absence("alice", datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 13, tzinfo=UTC))
    d = dialog()
    assert d.start(stored, shown) == [ab.Describe(shown), ab.Ask("absence_end_menu", 1)]
    assert d.typed(typed("1")) == [ab.End(7)]
    assert d.answered(ab.Input.ENDED) == [ab.Tell("absence_ended")] and d.done
    for keep in ("*", ""):
        d = dialog()
        d.start(stored, shown)
        assert d.typed(typed(keep)) == [] and d.done
    d = dialog()
    d.start(stored, shown)
    assert d.typed(typed("5")) == [ab.Tell("invalid"), ab.Ask("absence_end_menu", 1)]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(["1212", "3102", "12", "", "*", "202", "999", "1", "0112", "200"]).map(
        typed), st.just(SILENT),
    st.sampled_from([ab.Input.SAVED, ab.Input.BACKUP_REFUSED, ab.Input.OVERLAPS,
                     ab.Input.FAILED, ab.Input.ENDED])), max_size=30),
    st.booleans(), st.booleans())
def test_any_sequence_stays_in_the_table_and_saves_only_what_was_typed(events, backups, has):
    d = dialog(backups)
    out = d.start(SimpleNamespace(id=3) if has else None,
                  Absence("alice", datetime(2026, 12, 1, tzinfo=UTC),
                          datetime(2026, 12, 5, tzinfo=UTC)) if has else None)
    for event in events:
        if d.done:
            break
        if isinstance(event, Typed):
            if not out or not isinstance(out[-1], ab.Ask):
                continue
            out = d.typed(event)
        else:
            if not out or not isinstance(out[-1], ab.Save | ab.End):
                continue
            if (event is ab.Input.ENDED) != isinstance(out[-1], ab.End):
                continue
            out = d.answered(event)
        every_phrase_is_sayable(out)
        assert d.tries < DIALOG_TRIES or (d.done and out[-1] == ab.Tell("nothing_saved"))
        for o in out:
            if isinstance(o, ab.Save):
                assert o.last_day >= TODAY and (o.backup is None or o.backup in
                                                EXTENSIONS.values())
                assert backups or o.backup is None


def test_every_absence_phrase_of_the_table_can_be_said():
    for said_, _after, _costs in ab.TABLE.values():
        every_phrase_is_sayable([ab.Tell(p) for p in said_])
    for phrase, _digits in ab.QUESTIONS.values():
        every_phrase_is_sayable([ab.Ask(phrase, 1)])


# ------------------------------------------------------------------ said back


@pytest.fixture(scope="module")
def policy():
    return compile_text(menu_policy_text(), name="phone-settings-test.toml")


def test_an_absence_is_said_back_with_the_last_day_and_the_backup(policy):
    now = datetime(2026, 12, 1, 19, 0, tzinfo=policy.organisation.timezone)
    back_on = datetime(2026, 12, 13, tzinfo=policy.organisation.timezone)
    absence = Absence("alice", now, back_on, backup="bernard")
    assert words.absence_sentences(policy, absence, now, "en") == [
        "You are absent until Saturday 12 December.", "Your calls go to Bernard Petit."]
    assert words.absence_sentences(policy, absence, now, "fr") == [
        "Votre absence est enregistrée jusqu'au samedi 12 décembre inclus.",
        "Vos appels sont renvoyés vers Bernard Petit."]
    later = Absence("alice", now + timedelta(days=40), back_on + timedelta(days=45))
    assert words.absence_sentences(policy, later, now, "en") == [
        "You are absent from Sunday 10 January 2027 until Tuesday 26 January 2027."]
