"""The decisions obey the store: the pure routing, mail and deposit functions are handed the
policy refined by a real SQLite store's contents, and the serving process's overlay follows
changes another process commits, or falls back to the policy alone when the store fails."""

from __future__ import annotations

import logging
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta

from mailcall.core.decisions.deposit_plan import plan_deposit
from mailcall.core.decisions.greeting_text import greeting_text
from mailcall.core.decisions.mailing import plan_mail
from mailcall.core.decisions.plans import AutoReply, CallRequest, MailRequest, Notify, Ring
from mailcall.core.decisions.plans import Voicemail as VoicemailStep
from mailcall.core.decisions.routing import plan_call
from mailcall.userstore.overlay import StoreOverlay
from mailcall.userstore.refined_view import refined_policy
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from tests.userstore.conftest import EXAMPLE, NOW

DURING = NOW + timedelta(days=1)  # Wednesday 2 December, 10:00 in Paris


def view(policy, backend):
    return refined_policy(policy, backend.read)


def ringing(plan) -> list[str]:
    return [s.who for s in plan.steps if isinstance(s, Ring)]


def voicemail(plan) -> VoicemailStep:
    (step,) = [s for s in plan.steps if isinstance(s, VoicemailStep)]
    return step


def call(policy, to="201", at=DURING, state="unknown"):
    return plan_call(policy, CallRequest(callee=to, caller="+33611111111", at=at, state=state))


def test_an_own_absence_reroutes_to_its_backup_with_the_absence_greeting(policy, store, backend):
    before = call(view(policy, backend))
    assert ringing(before)[0] == "alice"
    store.set_absence(policy, "alice", until="2026-12-12", backup="carole",
                      message="En congé", actor="it:admin", origin="cli")
    plan = call(view(policy, backend))
    assert ringing(plan) == ["carole", "bernard", "@reception"]
    assert voicemail(plan).greeting == "absence"
    assert any("alice is absent" in line and "backup carole" in line
               for line in plan.explanation)
    # The same fact for the greeting's words: the backup and the return date.
    text = greeting_text(view(policy, backend), "alice", "absence", DURING)
    assert "Carole Dubois" in text and "12/12" in text
    # The compiled policy itself is untouched (nothing recompiled, nothing mutated).
    assert ringing(call(policy))[0] == "alice"


def test_the_mobile_backups_order_and_greetings_chosen_are_obeyed(policy, store, backend):
    base = call(policy, state="unknown")
    assert "alice" in ringing(base) and ringing(base).count("alice") == 2  # desk, then mobile
    store.set(policy, "alice", {"reroute.mobile": False, "backups": ["@reception", "bernard"],
                                "greetings": ["unavailable"]}, actor="alice", origin="web")
    plan = call(view(policy, backend))
    assert ringing(plan) == ["alice", "@reception", "bernard"]  # no mobile, the user's order
    busy = call(view(policy, backend), state="busy")
    assert voicemail(busy).greeting == "unavailable"  # "busy" is no longer among her greetings
    assert voicemail(call(policy, state="busy")).greeting == "busy"


def test_the_policy_files_absence_wins_where_both_cover_a_moment(policy, store, backend):
    # emma is absent in the policy file (1-13 December, backup bernard); her own absence
    # with another backup overlaps it.
    store.set_absence(policy, "emma", start="2026-12-10", until="2026-12-20", backup="alice",
                      actor="emma", origin="web")
    refined = view(policy, backend)
    assert ringing(call(refined, to="205"))[0] == "bernard"
    after = call(refined, to="205", at=datetime(2026, 12, 15, 9, 0, tzinfo=UTC))
    assert ringing(after)[0] == "alice"  # only hers covers the 15th
    assert "Bernard Petit" in greeting_text(refined, "emma", "absence", DURING)
    later = greeting_text(refined, "emma", "absence", datetime(2026, 12, 15, 9, 0, tzinfo=UTC))
    assert "Alice Martin" in later


def test_a_backup_absent_by_their_own_choice_hands_on(policy, store, backend):
    store.set_absence(policy, "bernard", until="2026-12-12", actor="bernard", origin="phone")
    plan = call(view(policy, backend), state="busy")
    assert "bernard" not in ringing(plan)
    assert any("bernard is absent" in line for line in plan.explanation)


def test_mail_obeys_an_own_absence_and_the_medium_chosen(policy, store, backend):
    request = MailRequest(recipient="alice@stockinox.example", sender="bob@example.net",
                          at=DURING)
    (notify,) = [a for a in plan_mail(policy, request).actions if isinstance(a, Notify)]
    assert (notify.medium, notify.address) == ("sms", "+33612345678")
    store.set(policy, "alice", {"preferred_medium": "email"}, actor="alice", origin="web")
    (notify,) = [a for a in plan_mail(view(policy, backend), request).actions
                 if isinstance(a, Notify)]
    assert (notify.medium, notify.address) == ("email", "alice@stockinox.example")
    store.set_absence(policy, "alice", until="2026-12-12", backup="bernard",
                      message="Retour le 12", actor="alice", origin="web")
    plan = plan_mail(view(policy, backend), request)
    assert not [a for a in plan.actions if isinstance(a, Notify)]
    (reply,) = [a for a in plan.actions if isinstance(a, AutoReply)]
    assert "Bernard Petit" in reply.body and "Retour le 12" in reply.body
    # A voicemail deposit during the absence: no notification either, and the plan says so.
    deposit = plan_deposit(view(policy, backend), mailbox="alice", kind="voice", at=DURING)
    assert deposit.notify == () and any("absent" in line for line in deposit.explanation)


def test_deposit_notification_follows_the_users_medium(policy, store, backend):
    store.set(policy, "alice", {"preferred_medium": "email", "notify.hours": "office"},
              actor="alice", origin="web")
    plan = plan_deposit(view(policy, backend), mailbox="alice", kind="voice", at=DURING)
    assert [(n.medium, n.address) for n in plan.notify] == [("email", "alice@stockinox.example")]
    store.set(policy, "alice", {"notify.voicemail": False}, actor="alice", origin="web")
    assert plan_deposit(view(policy, backend), mailbox="alice", kind="voice",
                        at=DURING).notify == ()


def test_the_overlay_obeys_a_change_committed_by_another_process(policy, store_path, tmp_path):
    SqliteStore(store_path).close()
    overlay = StoreOverlay.for_file(store_path, min_interval=0)
    assert overlay.open()
    assert ringing(call(overlay.policy(policy)))[0] == "alice"
    from tests.userstore.test_obeyed_calls import AWAY_FROM, AWAY_UNTIL
    from tests.userstore.test_obeyed_calls import DURING as AWAY  # office hours, any day run
    done = subprocess.run(
        [sys.executable, "-m", "mailcall.core.cli", "absence", "set", "alice", "--from",
         AWAY_FROM, "--until", AWAY_UNTIL, "--backup", "carole", "--policy", str(EXAMPLE),
         "--store", str(store_path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert ringing(call(overlay.policy(policy), at=AWAY))[0] == "carole"
    # What changed, for mailcall_user_settings_changed: her absences, nothing else.
    assert overlay.take_changed() == {"alice": frozenset({"absences"})}
    assert overlay.take_changed() == {}
    overlay.close()


def test_a_store_locked_at_start_gives_the_policy_alone_then_applies(policy, store_path,
                                                                     caplog):
    backend = SqliteStore(store_path)
    UserStore(backend, clock=lambda: NOW).set_absence(
        policy, "alice", until="2026-12-12", backup="carole", actor="it", origin="cli")
    backend.close()
    # Another program holds the file exclusively (sqlite3 with locking_mode=EXCLUSIVE).
    holder = sqlite3.connect(store_path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    clock = [0.0]
    overlay = StoreOverlay.for_file(store_path, min_interval=0, retry_after=5,
                                    clock=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="mailcall.userstore"):
        assert not overlay.open()
        for _ in range(3):
            assert ringing(call(overlay.policy(policy)))[0] == "alice"  # the policy alone
        lines = [r.getMessage() for r in caplog.records if r.name == "mailcall.userstore"]
        assert len(lines) == 1, lines
        assert str(store_path) in lines[0] and "locked" in lines[0]
        assert "policy file alone" in lines[0]
        holder.execute("COMMIT")
        holder.close()
        clock[0] = 6.0  # retried after retry_after seconds
        assert ringing(call(overlay.policy(policy)))[0] == "carole"
        lines = [r.getMessage() for r in caplog.records if r.name == "mailcall.userstore"]
        assert len(lines) == 2 and "apply again" in lines[1], lines
    overlay.close()


def test_a_file_that_is_not_a_store_gives_the_policy_alone(policy, store_path, caplog):
    store_path.parent.mkdir(parents=True)
    store_path.write_bytes(b"this is not SQLite at all\n" * 400)
    overlay = StoreOverlay.for_file(store_path, retry_after=3600)
    with caplog.at_level(logging.WARNING, logger="mailcall.userstore"):
        assert not overlay.open()
        assert ringing(call(overlay.policy(policy)))[0] == "alice"
    (line,) = [r.getMessage() for r in caplog.records if r.name == "mailcall.userstore"]
    assert "damaged" in line and str(store_path) in line


def test_a_store_that_cannot_be_opened_gives_the_policy_alone(policy, tmp_path, caplog):
    unusable = tmp_path / "store.sqlite"
    unusable.mkdir()  # a folder where the file should be
    overlay = StoreOverlay.for_file(unusable, retry_after=3600)
    with caplog.at_level(logging.WARNING, logger="mailcall.userstore"):
        assert not overlay.open()
        for _ in range(3):
            assert ringing(call(overlay.policy(policy)))[0] == "alice"
    lines = [r.getMessage() for r in caplog.records if r.name == "mailcall.userstore"]
    assert len(lines) == 1 and "cannot open the user store" in lines[0], lines


def test_a_serving_process_never_creates_the_store_and_opens_it_once_made(policy, store_path):
    overlay = StoreOverlay.for_file(store_path, min_interval=0)
    assert not overlay.open() and overlay.problem is None
    assert ringing(call(overlay.policy(policy)))[0] == "alice"
    assert not store_path.parent.exists()  # nothing created by deciding
    backend = SqliteStore(store_path)  # the first change, by the CLI or the web page
    UserStore(backend, clock=lambda: NOW).set_absence(
        policy, "alice", until="2026-12-12", backup="carole", actor="it", origin="cli")
    backend.close()
    assert ringing(call(overlay.policy(policy)))[0] == "carole"
    overlay.close()
