"""PIN and absence by phone over the real AGI server, a real Dovecot and a real user store.

The caller is the scripted fake Asterisk of tests/phonemenu/phone.py (it plays
only files that exist); the store is a real SQLite file in the test's folder,
attached to the runtime as the ``user-store`` service of ``mailcall serve``
attaches it, so the login and the router read it through
``decision_policy`` exactly as in production. Each test checks what the caller
heard, what the store holds afterwards (values, audit with origin ``phone``)
and what the next decision does with it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest

from mailcall.userstore.overlay import StoreOverlay, attach, decision_policy, detach
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.agi.harness import serving

from .phone import Phone, Press, run_phone
from .support import LIVE_POLICY, PIN, cleanup, start_mailboxes

MENU_WAIT = r"WAIT FOR DIGIT"
NEW_PIN = "97531"


class SettingsPhone(Phone):
    """The scripted caller, also for GET DATA whose prompt is a generated phrase (a path):
    like Asterisk it plays it only when the file exists."""

    def _reply(self, line: str, words: list[str]) -> list[str]:
        if (" ".join(words[:2]).upper() == "GET DATA" and len(words) > 2
                and words[2].startswith("/") and not self.hungup):
            name = words[2]
            if not (Path(name + ".sln").is_file() or Path(name + ".wav").is_file()):
                self.missing.append(f"{name} ({self.language})")
            rule = self._rule(line)
            if rule is not None and rule.hangup:
                self.hangup_pending = True
                return ["200 result=-1\n"]
            self.played.append((name, self.language))
            if rule is not None and rule.digits is not None:
                return [f"200 result={rule.digits}\n"]
            return ["200 result= (timeout)\n"]
        return super()._reply(line, words)


def asking(phrase: str) -> str:
    """The GET DATA of a generated question."""
    return rf"GET DATA \S*/phrases/{phrase}-[a-z]+/"


@pytest.fixture
def boxes(dovecot_factory):
    with with_store(start_mailboxes(dovecot_factory)) as made:
        yield made


@contextmanager
def with_store(made):
    """`made`'s runtime obeying a user store in its folder (the user-store service's way)."""
    made.store_path = made.work / "users" / "store.sqlite"
    overlay = StoreOverlay.for_file(made.store_path)
    overlay.open()
    attach(made.runtime, overlay)
    try:
        yield made
    finally:
        closed = detach(made.runtime)
        if closed is not None:
            closed.close()
        cleanup(made)


def call(boxes, *rules: Press, pin: str = PIN, **kw) -> SettingsPhone:
    phone = SettingsPhone([Press("GET DATA agent-pass", digits=pin), *rules], **kw)

    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address)
    return asyncio.run(go())


def store(boxes) -> UserStore:
    return UserStore(SqliteStore(boxes.store_path))


def absences(boxes, user: str = "alice"):
    if not boxes.store_path.exists():
        return ()
    s = store(boxes)
    try:
        return s.refinements(user).absences
    finally:
        s.backend.close()


def ddmm(boxes, days: int) -> tuple[str, object]:
    day = boxes.runtime.now().date() + timedelta(days=days)
    return f"{day.day:02d}{day.month:02d}", day


OPTIONS_3 = (Press("STREAM FILE vm-onefor", key="0"), Press(MENU_WAIT, key="3"))
"""0 then 3: the absence (VoiceMailMain's 3 records a name; mailcall has none)."""


def status(phone: Phone) -> str | None:
    return phone.variables_set.get("MAILCALL_STATUS")


# ------------------------------------------------------------------ absence


def test_an_absence_set_by_phone_is_stored_audited_and_obeyed_by_the_next_decision(boxes):
    typed, last = ddmm(boxes, 10)
    phone = call(boxes, *OPTIONS_3,
                 Press(asking("absence_until"), digits=typed),
                 Press(asking("absence_backup"), digits="203"),   # Carole
                 Press(MENU_WAIT, key="*"))
    assert not phone.missing, phone.missing
    assert status(phone) == "MAILBOX_DONE"
    [absence] = absences(boxes)
    tz = boxes.runtime.policy.organisation.timezone
    assert absence.backup == "carole"
    assert absence.until.astimezone(tz).date() == last + timedelta(days=1)  # back on the next day
    assert absence.until.astimezone(tz).hour == 0
    assert absence.stamp.origin == "phone" and absence.stamp.actor == "alice"
    s = store(boxes)
    try:
        audit = s.audit("alice")
    finally:
        s.backend.close()
    assert audit and all(e.stamp.origin == "phone" for e in audit)
    # The router: the next decision during the absence sees it, with Carole as the backup.
    refined = decision_policy(boxes.runtime)
    covering = refined.absence_at("alice", boxes.runtime.now() + timedelta(days=1))
    assert covering is not None and covering.backup == "carole"
    # Said back: the two sentences of the confirmation after the backup was typed.
    after = phone.commands[next(i for i, c in enumerate(phone.commands)
                                if "absence_backup-" in c):]
    spoken = [c for c in after if "/call-" in c and c.startswith("STREAM FILE")]
    assert len(spoken) >= 2, after


def test_an_invalid_date_is_refused_with_its_reason_three_times_then_nothing_saved(boxes):
    phone = call(boxes, *OPTIONS_3,
                 Press(asking("absence_until"), digits="3102"),
                 Press(asking("absence_until"), digits="12"),
                 Press(asking("absence_until"), digits="3102"),
                 Press(MENU_WAIT, key="*"))
    assert not phone.missing, phone.missing
    assert len(phone.streams(r"/phrases/absence_not_a_date-en/")) == 2
    assert phone.streams(r"/phrases/absence_four_digits-en/")
    assert phone.streams(r"/phrases/nothing_saved-en/")
    assert not any("absence_backup" in c for c in phone.commands)
    assert absences(boxes) == () and status(phone) == "MAILBOX_DONE"


def test_a_backup_the_store_refuses_is_refused_aloud_and_nothing_saved(boxes):
    typed, _ = ddmm(boxes, 3)
    phone = call(boxes, *OPTIONS_3,
                 Press(asking("absence_until"), digits=typed),
                 Press(asking("absence_backup"), digits="201"),   # herself
                 Press(MENU_WAIT, key="*"))
    assert not phone.missing, phone.missing
    assert phone.streams(r"/phrases/absence_backup_refused-en/")
    assert phone.streams(r"/phrases/nothing_saved-en/")
    assert absences(boxes) == ()


def test_hanging_up_before_the_last_answer_saves_nothing(boxes):
    typed, _ = ddmm(boxes, 3)
    phone = call(boxes, *OPTIONS_3,
                 Press(asking("absence_until"), digits=typed),
                 Press(asking("absence_backup"), hangup=True))
    assert status(phone) == "MAILBOX_DONE"
    assert absences(boxes) == () and not boxes.store_path.exists()


def test_an_absence_set_elsewhere_is_said_and_ended_by_phone(boxes):
    s = store(boxes)
    try:
        until = (boxes.runtime.now() + timedelta(days=6)).date()
        s.set_absence(boxes.runtime.policy, "alice", until=until, backup="bernard",
                      actor="alice", origin="web")
    finally:
        s.backend.close()
    phone = call(boxes, *OPTIONS_3, Press(asking("absence_end_menu"), digits="1"),
                 Press(MENU_WAIT, key="*"))
    assert not phone.missing, phone.missing
    assert phone.streams(r"/phrases/absence_ended-en/")
    assert absences(boxes) == ()
    s = store(boxes)
    try:
        [removal, setting] = s.audit("alice")[:2]
    finally:
        s.backend.close()
    assert removal.stamp.origin == "phone" and setting.stamp.origin == "web"
    assert decision_policy(boxes.runtime).absence_at(
        "alice", boxes.runtime.now() + timedelta(days=1)) is None


def test_star_keeps_the_absence_set(boxes):
    s = store(boxes)
    try:
        s.set_absence(boxes.runtime.policy, "alice",
                      until=(boxes.runtime.now() + timedelta(days=6)).date(),
                      actor="alice", origin="web")
    finally:
        s.backend.close()
    call(boxes, *OPTIONS_3, Press(asking("absence_end_menu"), digits="*"),
         Press(MENU_WAIT, key="*"))
    assert len(absences(boxes)) == 1


@pytest.mark.parametrize("fault", ["locked", "not a store"])
def test_a_store_locked_or_unreadable_is_apologised_for_and_the_call_goes_on(boxes, fault):
    typed, _ = ddmm(boxes, 3)
    holder = None
    if fault == "locked":
        store(boxes).backend.close()  # a real store, then another writer holds its lock
        holder = sqlite3.connect(boxes.store_path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
    else:
        boxes.store_path.parent.mkdir(parents=True, exist_ok=True)
        boxes.store_path.write_bytes(b"this is not an SQLite file\n" * 100)
    # Locked: read (WAL readers do not wait), typed, then the write waits 1 s and fails.
    # Not a store: it cannot even be read, so the apology comes at once.
    typing = (Press(asking("absence_until"), digits=typed),
              Press(asking("absence_backup"), digits="")) if fault == "locked" else ()
    try:
        phone = call(boxes, *OPTIONS_3, *typing, Press(MENU_WAIT, key="*"))
    finally:
        if holder is not None:
            holder.execute("ROLLBACK")
            holder.close()
    assert not phone.missing, phone.missing
    assert phone.streams(r"/phrases/settings_unavailable-en/")
    assert status(phone) == "MAILBOX_DONE"
    # the call went on: the options were said again, then the main menu
    said = phone.commands[next(i for i, c in enumerate(phone.commands)
                               if "settings_unavailable-" in c):]
    assert any("/phrases/options_menu-en/" in c for c in said)
    assert any("vm-onefor" in c for c in said)
    if fault == "locked":
        assert absences(boxes) == ()


def test_a_profile_that_locks_reroute_sets_the_absence_without_asking_a_backup(
        dovecot_factory):
    text = LIVE_POLICY.read_text().replace(
        'description = "Sales: a colleague takes over, every greeting, messages in Opus"\n',
        'description = "Sales: a colleague takes over, every greeting, messages in Opus"\n'
        'locked = ["reroute"]\n', 1)
    assert 'locked = ["reroute"]' in text
    with with_store(start_mailboxes(dovecot_factory, text)) as boxes:
        typed, _ = ddmm(boxes, 4)
        phone = call(boxes, *OPTIONS_3, Press(asking("absence_until"), digits=typed),
                     Press(MENU_WAIT, key="*"))
        assert not phone.missing, phone.missing
        assert phone.streams(r"/phrases/absence_backup_by_it-en/")
        assert not any("absence_backup-" in c for c in phone.commands)
        [absence] = absences(boxes)
        assert absence.backup is None


def test_the_absence_dialog_in_french_plays_only_what_exists(dovecot_factory):
    text = LIVE_POLICY.read_text().replace(
        'numbers = ["+33140000201"]\n', 'numbers = ["+33140000201"]\nlanguage = "fr"\n', 1)
    with with_store(start_mailboxes(dovecot_factory, text)) as boxes:
        typed, _ = ddmm(boxes, 2)
        phone = call(boxes, *OPTIONS_3,
                     Press(asking("absence_until"), digits="3102"),
                     Press(asking("absence_until"), digits=typed),
                     Press(asking("absence_backup"), digits="999"),
                     Press(asking("absence_backup"), digits="202"),
                     Press(MENU_WAIT, key="5"),
                     Press("GET DATA vm-newpassword", digits="12"),
                     Press("GET DATA vm-newpassword", digits="*"),
                     Press(MENU_WAIT, key="*"))
        assert phone.language == "fr"
        assert not phone.missing, phone.missing
        phrases = {n.split("/phrases/")[1].split("/")[0] for n in phone.streams("/phrases/")}
        assert {"absence_until-fr", "absence_not_a_date-fr", "absence_backup-fr",
                "pin_rules-fr", "nothing_saved-fr"} <= phrases, phrases
        assert all(p.endswith("-fr") for p in phrases), phrases
        assert phone.streams("^pbx-invalid$") and phone.streams("^vm-invalid-password$")
        [absence] = absences(boxes)
        assert absence.backup == "bernard"


# ------------------------------------------------------------------ PIN


def test_a_pin_changed_by_phone_opens_the_mailbox_and_the_old_one_no_longer(boxes, caplog):
    caplog.set_level(logging.DEBUG)
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="0"), Press(MENU_WAIT, key="5"),
                 Press("GET DATA vm-newpassword", digits=NEW_PIN),
                 Press("GET DATA vm-reenterpassword", digits=NEW_PIN),
                 Press(MENU_WAIT, key="*"))
    assert not phone.missing, phone.missing
    assert phone.streams("^vm-passchanged$")
    s = store(boxes)
    try:
        [entry] = [e for e in s.audit("alice") if e.field == "pin"]
    finally:
        s.backend.close()
    assert entry.stamp.origin == "phone" and entry.new == "(a PIN hash)"
    # The old PIN no longer opens the mailbox; the new one does, in the next call.
    again = call(boxes, Press("GET DATA agent-pass", digits=NEW_PIN), pin=PIN)
    assert again.streams("^auth-incorrect$") == ["auth-incorrect"]
    assert status(again) == "MAILBOX_DONE" and again.streams("^vm-onefor$")
    old = call(boxes, Press("GET DATA agent-pass", digits=PIN),
               Press("GET DATA agent-pass", digits=PIN), pin=PIN)
    assert status(old) == "AUTH_FAILED"
    # Never in a log line nor in the store file in clear.
    assert NEW_PIN not in caplog.text
    raw = b"".join(p.read_bytes() for p in boxes.store_path.parent.iterdir() if p.is_file())
    assert NEW_PIN.encode() not in raw


def test_a_pin_typed_twice_differently_is_not_saved(boxes):
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="0"), Press(MENU_WAIT, key="5"),
                 Press("GET DATA vm-newpassword", digits=NEW_PIN),
                 Press("GET DATA vm-reenterpassword", digits="13579"),
                 Press("GET DATA vm-newpassword", digits="*"),
                 Press(MENU_WAIT, key="*"))
    assert not phone.missing, phone.missing
    assert phone.streams("^vm-mismatch$") and phone.streams("^vm-pls-try-again$")
    assert not boxes.store_path.exists()
    assert status(call(boxes)) == "MAILBOX_DONE"  # the policy's PIN still opens it


# ------------------------------------------------------------------ greetings


def test_recording_a_greeting_turned_off_on_the_page_turns_it_on_in_the_store(boxes):
    """#14 §6: the phone's greeting option writes the same store. A greeting the user had
    turned off (here on the page) and records again by phone is used again: the store's
    ``greetings`` choice gains it, audited as a phone change; one already in use is not
    written again."""
    policy = boxes.runtime.policy
    s = store(boxes)
    try:
        s.set(policy, "alice", {"greetings": ["unavailable"]}, actor="alice", origin="web")
    finally:
        s.backend.close()
    from mailcall.userstore.overlay import overlay_of
    overlay_of(boxes.runtime).refresh(force=True)
    assert "busy" not in decision_policy(boxes.runtime).users["alice"].features.greetings
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="0"), Press(MENU_WAIT, key="2"),
                 Press(MENU_WAIT, key="*"))
    assert not phone.missing, phone.missing
    assert any(c.startswith("RECORD FILE") for c in phone.commands), phone.commands
    assert phone.streams("^auth-thankyou$|^vm-msgsaved$")
    greeting = boxes.runtime.setting("greetings_dir")
    assert (Path(greeting) / "alice" / "busy.wav").is_file()
    s = store(boxes)
    try:
        stored = s.refinements("alice").values["greetings"]
        audit = [e for e in s.audit("alice") if e.field == "greetings"]
    finally:
        s.backend.close()
    assert stored.value == ["unavailable", "busy"]
    assert stored.stamp.origin == "phone" and stored.stamp.actor == "alice"
    assert [e.stamp.origin for e in audit] == ["phone", "web"]  # newest first
    assert "busy" in decision_policy(boxes.runtime).users["alice"].features.greetings
    # Recorded again while in use: nothing more is written.
    call(boxes, Press("STREAM FILE vm-onefor", key="0"), Press(MENU_WAIT, key="2"),
         Press(MENU_WAIT, key="*"))
    s = store(boxes)
    try:
        assert len([e for e in s.audit("alice") if e.field == "greetings"]) == 2
    finally:
        s.backend.close()
