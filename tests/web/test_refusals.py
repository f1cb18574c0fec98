"""Every refusal the user store can give is worded for an employee, in English and French.

The store's messages have no codes; the page recognises each by its field and the
sentence's fixed parts (web/refusals.py). These cases make the real store refuse
each kind (the ceiling check, the absence checks, the checks inside its write), so
a change of the store's wording fails here rather than showing English on a French
page.
"""

from __future__ import annotations

import logging
import re

import pytest

from mailcall.core.policy.load import load_policy
from mailcall.core.policy.pins import hash_pin
from mailcall.userstore.errors import FieldProblem, RefinementRefused
from mailcall.userstore.fields import check_absence_backup, check_value
from mailcall.userstore.service import UserStore
from mailcall.userstore.sqlite_store import SqliteStore
from mailcall.web.refusals import PATTERNS, kind_of, translate
from tests.support.policies import example_policy_text
from tests.web.harness import NOW

CHANGES = {
    "profiles": {"guest": {"extends": "office", "features": {"mailbox_by_phone": False}}},
    "users": {
        "frank": {"name": "Frank", "email": "frank@stockinox.example", "profile": "sales",
                  "extensions": ["206"], "preferred_medium": "email"},  # no mobile
        "gina": {"name": "Gina", "email": "gina@stockinox.example", "profile": "guest",
                 "extensions": ["207"]},
    },
}


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    path = tmp_path_factory.mktemp("refusals") / "policy.toml"
    path.write_text(example_policy_text(CHANGES), "utf-8")
    return load_policy(path)


def ceiling(policy, uid, name, value, pending=None):
    message = check_value(policy, policy.users[uid], name, value, pending)
    assert message is not None, (uid, name, value)
    return FieldProblem(name, message)


CEILING = [
    ("alice", "nope", True, None, "not_setting"),
    ("david", "backups", [], None, "locked"),
    ("david", "reroute.mobile", False, None, "locked"),
    ("gina", "pin", "x", None, "pin.no_phone"),
    ("alice", "pin", "1234", None, "pin.not_hash"),
    ("alice", "notify.mail", "on", None, "bool.bad"),
    ("carole", "notify.mail", True, None, "bool.not_granted"),
    ("bernard", "reroute.mobile", True, None, "bool.not_granted"),  # the policy file's override
    ("frank", "reroute.mobile", True, None, "no_mobile"),
    ("alice", "notify.hours", "never", None, "choice.bad"),
    ("alice", "notify.hours", "always", None, "choice.only"),
    ("alice", "notify.media", "sms", None, "list.bad"),
    ("alice", "notify.media", ["sms", "sms"], None, "list.twice"),
    ("alice", "notify.media", [], None, "media.empty"),
    ("alice", "notify.media", ["fax"], None, "list.not_granted"),
    ("alice", "greetings", ["party"], None, "greeting.unknown"),
    ("carole", "greetings", ["busy"], None, "list.not_granted"),
    ("alice", "preferred_medium", "", None, "medium.bad"),
    ("alice", "preferred_medium", "fax", None, "medium.not_granted"),
    ("alice", "preferred_medium", "email", {"notify.media": ["sms"]}, "medium.narrowed"),
    ("frank", "preferred_medium", "sms", None, "medium.no_mobile"),
    ("alice", "backups", "bernard", None, "backups.bad"),
    ("alice", "backups", ["bernard", "bernard"], None, "backups.twice"),
    ("alice", "backups", ["nobody"], None, "ref.unknown"),
    ("alice", "backups", ["carole"], None, "backups.not_allowed"),
]


@pytest.mark.parametrize(("uid", "name", "value", "pending", "kind"), CEILING)
def test_each_refusal_of_the_ceiling_check_is_recognised(policy, uid, name, value, pending,
                                                         kind):
    assert_worded(ceiling(policy, uid, name, value, pending), kind)


@pytest.mark.parametrize(("uid", "backup", "kind"), [
    ("david", "carole", "absence.locked"),
    ("carole", "alice", "absence.no_reroute"),
    ("alice", "alice", "absence.self"),
    ("alice", "@nobody", "ref.unknown"),
])
def test_each_refusal_of_an_absence_backup_is_recognised(policy, uid, backup, kind):
    message = check_absence_backup(policy, policy.users[uid], backup)
    assert message is not None
    assert_worded(FieldProblem("absence.backup", message), kind)


def refused(call) -> FieldProblem:
    with pytest.raises(RefinementRefused) as caught:
        call()
    [problem] = caught.value.problems
    return problem


def test_each_refusal_made_inside_the_store_is_recognised(policy, tmp_path):
    store = UserStore(SqliteStore(tmp_path / "store.sqlite"), clock=lambda: NOW)
    try:
        store.set_absence(policy, "alice", until="2026-12-10", actor="alice", origin="web")
        cases = [
            (lambda: store.set(policy, "alice", {}, actor="a", origin="web"), "nothing"),
            (lambda: store.set(policy, "alice", {"notify.media": ["email"]}, actor="a",
                               origin="web"), "media.left_out"),
            (lambda: store.set_absence(policy, "alice", until="2026-02-31", actor="a",
                                       origin="web"), "date.bad"),
            (lambda: store.set_absence(policy, "alice", until="it's soon", actor="a",
                                       origin="web"), "date.bad"),
            (lambda: store.set_absence(policy, "alice", until="2026-11-30", actor="a",
                                       origin="web"), "date.past"),
            (lambda: store.set_absence(policy, "alice", start="2026-12-20", until="2026-12-15",
                                       actor="a", origin="web"), "date.order"),
            (lambda: store.set_absence(policy, "alice", until="9999-12-31 23:30", actor="a",
                                       origin="web"), "date.window"),
            (lambda: store.set_absence(policy, "alice", start="0001-01-01", until="2026-12-20",
                                       actor="a", origin="web"), "date.window"),
            (lambda: store.set_absence(policy, "alice", until="2026-12-12", message="a\x07b",
                                       actor="a", origin="web"), "message.control"),
            (lambda: store.set_absence(policy, "alice", until="2026-12-12", message="x" * 1001,
                                       actor="a", origin="web"), "message.long"),
            (lambda: store.set_absence(policy, "alice", until="2026-12-05", actor="a",
                                       origin="web"), "absence.overlap"),
            (lambda: store.clear_absences(policy, "alice", [99], actor="a", origin="web"),
             "absence.unknown_id"),
            (lambda: store.set(policy, "zoe", {"notify.mail": False}, actor="a",
                               origin="web"), "user.unknown"),
        ]
        for call, kind in cases:
            assert_worded(refused(call), kind)
    finally:
        store.backend.close()


def assert_worded(problem: FieldProblem, kind: str) -> None:
    assert kind_of(problem) == kind, (kind, problem.message)
    en, fr = translate(problem, "en"), translate(problem, "fr")
    assert not en.startswith("Refused:") and not fr.startswith("Refusé :"), problem.message
    assert en != fr
    for english in ("users may", "the policy file", "ask IT", "--"):
        assert english not in fr, (fr, problem.message)
    # No command line for IT ("mailcall absence clear ...") in an employee's page; the
    # product's name alone may be said.
    assert not re.search(r"mailcall [a-z]", en + fr), (en, fr, problem.message)


def test_every_pattern_is_exercised_by_a_case():
    kinds = {c[-1] for c in CEILING} | {"absence.locked", "absence.no_reroute", "absence.self",
                                        "nothing", "media.left_out", "date.bad", "date.past",
                                        "date.window", "date.order", "message.control",
                                        "message.long", "absence.overlap", "absence.unknown_id",
                                        "user.unknown"}
    assert {p.kind for p in PATTERNS} == kinds


def test_an_unknown_sentence_is_still_shown_and_logged_once(caplog):
    caplog.set_level(logging.WARNING)
    problem = FieldProblem("notify.media", "a sentence the page has never seen")
    assert translate(problem, "fr") == ("Refusé : a sentence the page has never seen "
                                        "(message en anglais)")
    translate(problem, "fr")
    warned = [r for r in caplog.records if "no translation" in r.getMessage()]
    assert len(warned) == 1 and "web/refusals.py" in warned[0].getMessage()


def test_outside_text_in_a_refusal_goes_through_display_text(policy):
    problem = ceiling(policy, "alice", "backups", ["evil\u202e\r\nX-Injected: 1"])
    text = translate(problem, "fr")
    assert "\u202e" not in text and "\r" not in text and "\n" not in text
    assert "evil X-Injected: 1 : personne de ce nom" in text


def test_a_pin_hash_refusal_never_shows_the_value(policy):
    problem = ceiling(policy, "gina", "pin", hash_pin("2468"))
    assert "scrypt" not in translate(problem, "en") + translate(problem, "fr")


def test_backups_not_given_are_named_as_the_policy_names_them(policy):
    problem = ceiling(policy, "alice", "backups", ["carole"])
    en = translate(problem, "en", policy)
    fr = translate(problem, "fr", policy)
    carole = policy.users["carole"].name
    given = [policy.users[r].name if not r.startswith("@") else policy.groups[r[1:]].name
             for r in policy.users["alice"].backups]
    assert en.startswith(f"{carole} is not among the backups IT gives you")
    assert all(name in en and name in fr for name in given), (en, fr)
    assert "'carole'" not in en and "bernard," not in en


def test_a_user_gone_from_the_policy_is_told_in_an_employees_words():
    problem = FieldProblem("user", "'zoe' is not a user of the policy file (users.zoe)")
    assert translate(problem, "en") == "Your account is no longer set up in mailcall: ask IT."
    assert translate(problem, "fr") == ("Votre compte n'est plus configuré dans mailcall : "
                                        "demandez à l'informatique.")
