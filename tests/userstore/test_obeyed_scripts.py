"""The per-user auto-reply scripts follow the store: rewritten only when their words change,
removed when no absence is ahead, and an admin's own file is never touched; each result is
compiled by the real ``sievec``."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime, timedelta, timezone

from mailcall.sieve.generate import MARKER, USERS_DIR
from mailcall.sieve.user_scripts import update_user_scripts
from mailcall.userstore.records import Change, NewAbsence, Stamp
from mailcall.userstore.refined_view import refined_policy
from tests.userstore.conftest import NOW

SIEVEC = shutil.which("sievec")


def test_scripts_follow_the_store(policy, store, backend, tmp_path, caplog):
    assert SIEVEC, "sievec (dovecot-sieve) is not installed"
    (tmp_path / USERS_DIR).mkdir()
    script = tmp_path / USERS_DIR / "alice@stockinox.example.sieve"
    assert update_user_scripts(refined_policy(policy, backend.read), ["alice"], tmp_path,
                               NOW, sievec=SIEVEC) == []
    store.set_absence(policy, "alice", until="2026-12-12", backup="bernard",
                      message="Au salon", actor="alice", origin="web")
    assert update_user_scripts(refined_policy(policy, backend.read), ["alice"], tmp_path,
                               NOW, sievec=SIEVEC) == [script]
    text = script.read_text()
    assert text.startswith(MARKER) and "vacation" in text and "Au salon" in text
    assert "Bernard Petit" in text
    assert script.with_suffix(".svbin").exists()  # compiled by sievec
    # Nothing changed: nothing written.
    assert update_user_scripts(refined_policy(policy, backend.read), ["alice"], tmp_path,
                               NOW, sievec=SIEVEC) == []
    store.clear_absences(policy, "alice", actor="alice", origin="web")
    assert update_user_scripts(refined_policy(policy, backend.read), ["alice"], tmp_path,
                               NOW, sievec=SIEVEC) == [script]
    assert not script.exists() and not script.with_suffix(".svbin").exists()
    # The admin's own file for carole stays as it is, and the log says so.
    own = tmp_path / USERS_DIR / "carole@stockinox.example.sieve"
    own.write_text("# the admin's\nkeep;\n")
    store.set_absence(policy, "carole", until="2026-12-12", actor="carole", origin="web")
    with caplog.at_level(logging.WARNING, logger="mailcall.sieve.scripts"):
        assert update_user_scripts(refined_policy(policy, backend.read), ["carole"],
                                   tmp_path, NOW) == []
    assert own.read_text() == "# the admin's\nkeep;\n"
    assert any("is not mailcall's" in r.getMessage() for r in caplog.records)


def test_one_users_bad_absence_does_not_stop_the_others(policy, store, backend, tmp_path,
                                                       caplog):
    """An absence stored before the date window existed (from year 1, until 9999-12-31 at
    23:30, 5 h behind UTC: beyond the last day Python holds once in UTC) makes that user's
    script impossible: it is logged, and everyone else's script is still written."""
    (tmp_path / USERS_DIR).mkdir()
    stamp = Stamp(actor="alice", at=NOW, origin="cli")
    backend.apply("alice", Change(add_absences=(NewAbsence(
        start=datetime(1, 1, 1, tzinfo=UTC),
        until=datetime(9999, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-5)))),)), stamp)
    store.set_absence(policy, "bernard", until="2026-12-12", actor="bernard", origin="web")
    with caplog.at_level(logging.ERROR, logger="mailcall.sieve.scripts"):
        written = update_user_scripts(refined_policy(policy, backend.read),
                                      ["alice", "bernard"], tmp_path, NOW, sievec=SIEVEC)
    assert written == [tmp_path / USERS_DIR / "bernard@stockinox.example.sieve"]
    assert not (tmp_path / USERS_DIR / "alice@stockinox.example.sieve").exists()
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    text = record.getMessage()
    assert "auto-reply script of alice" in text and "OverflowError" in text
    assert "mailcall absence clear alice --id N" in text
