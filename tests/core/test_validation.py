"""`mailcall check`: every problem at once, with file, line, key and a reason to act on."""

from __future__ import annotations

import shutil

import pytest

from mailcall.core.cli import main
from mailcall.core.errors import PolicyInvalid
from mailcall.core.policy import compile_text, load_policy

from .conftest import EXAMPLE, POLICIES

BASE = (POLICIES / "base.toml").read_text()


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyInvalid) as exc:
        compile_text(text, name="t.toml")
    return [str(p) for p in exc.value.problems]


def test_example_policy_passes(capsys):
    assert main(["check", str(EXAMPLE)]) == 0
    assert "policy OK" in capsys.readouterr().out


def test_base_policy_passes():
    policy = compile_text(BASE)
    assert set(policy.users) == {"ann"}


# (file, line, key, words of the reason)
MANY = [
    (3, "organisation.domain", None),
    (4, "organisation.timezone", "not a known time zone"),
    (5, "organisation.language", "'de' is not one of en, fr"),
    (8, "telephony.ring_time", "must be a whole number, not a string"),
    (11, "schedules.office.monday.0", "ends before it starts"),
    (12, "schedules.office.funday", "did you mean 'sunday'"),
    (13, "schedules.office.tuesday.0", "is not a range"),
    (18, "profiles.basic.features.notfy", "did you mean 'notify'"),
    (19, "profiles.basic.features.voicemail.enabled", "must be true or false"),
    (19, "profiles.basic.features.voicemail.formats.0", "'flac' is not one of"),
    (22, "profiles.loop-a.extends", "loops"),
    (27, "profiles.child.extends", "profile 'nonexistent' is not defined"),
    (31, "users.ann.email", "not a valid e-mail address"),
    (34, "users.ann.mobile", "not a phone number"),
    (35, "users.ann.backups.0", "'ghost' is not a defined user or @group"),
    (35, "users.ann.backups.1", "'@nogroup' is not a defined user or @group"),
    (36, "users.ann.schedule", "schedule 'night' is not defined"),
    (37, "users.ann.pin", "never the PIN itself"),
    (42, "users.bob.profile", "profile 'missing-profile' is not defined"),
    (48, "users.cid.extensions", "extension 101 is already used by ann"),
    (49, "users.cid.overrides.reroute.enabled", "asks for more than profile 'basic' grants"),
    (49, "users.cid.overrides.ring_time", "asks for more than profile 'basic' grants"),
    (52, "groups.desk.members.1", "user 'nobody' is not defined"),
    (53, "groups.desk.strategy", "'random' is not one of all, in-order"),
    (58, "absences.0.until", "before it starts"),
]


def test_broken_policy_reports_every_problem_with_place(capsys):
    path = POLICIES / "broken-many.toml"
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    for line, key, words in MANY:
        if words is None:
            continue
        expected = f"{path}:{line}: {key}:"
        matching = [row for row in err.splitlines() if expected in row]
        assert matching, f"no problem reported at {expected}\n{err}"
        assert any(words in row for row in matching), (words, matching)
    # The valid user 'ann' with a bad field is still known: no cascade of "not defined".
    assert "user 'ann' is not defined" not in err


def test_loops_and_locked_features():
    text = (POLICIES / "broken-loops.toml").read_text()
    found = "\n".join(problems(text))
    assert "users.ann.backups: backup chain loops: ann → bob → ann" in found
    assert "groups.a.overflow: backup chain loops: @a → @b → @a" in found
    assert "profile 'desk' locks 'reroute'" in found


def test_syntax_error_names_line(capsys):
    assert main(["check", str(POLICIES / "broken-syntax.toml")]) == 2
    err = capsys.readouterr().err
    assert "broken-syntax.toml:4: TOML syntax error" in err


def test_json_report(capsys):
    assert main(["check", "--json", str(POLICIES / "broken-loops.toml")]) == 2
    import json

    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    keys = {p["key"] for p in report["problems"]}
    assert {"users.ann.backups", "groups.a.overflow"} <= keys
    assert all(p["file"].endswith("broken-loops.toml") for p in report["problems"])


def test_missing_file(capsys):
    assert main(["check", "/nonexistent/policy.toml"]) == 2
    assert "file not found" in capsys.readouterr().err


@pytest.mark.parametrize("snippet, words", [
    ('[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "basic"\n'
     'extensions = ["1x1"]\n', "is not an extension"),
    ('[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "basic"\n'
     'numbers = ["+33 9 99"]\n', "phone number"),
    ('[users.bea]\nname = "Bea"\nemail = "bea@@example.test"\nprofile = "basic"\n',
     "not a valid e-mail address"),
    ('[users.bea]\nname = "Bea"\nprofile = "basic"\n', "required key 'email' is missing"),
    ('[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "basic"\n'
     'preferred_medium = "webhook"\n', "not among the media profile 'basic' grants"),
    ('[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "basic"\n'
     'preferred_medium = "sms"\n', "is 'sms' but the user has no 'mobile' number"),
    ('[telephony]\nendpoint = "SIP/201"\n', "must contain {extension}"),
    ('[telephony]\nexternal = "PJSIP/{number},tT"\n', "must not contain quotes"),
    ('[server]\nagi_listen = "4573"\n', "is not HOST:PORT"),
    ('[schedules.x]\nmonday = ["08:00-12:00", "11:00-14:00"]\n', "time ranges overlap"),
    ('[schedules.x]\nholidays = ["christmas"]\nmonday = ["08:00-12:00"]\n', "must be a date"),
    ('[[absences]]\nuser = "ann"\nfrom = 2026-12-01\n', "required key 'until' is missing"),
    ('[[absences]]\nuser = "ann"\nfrom = 2026-12-01\nuntil = 2026-12-05\nbackup = "ann"\n',
     "cannot be their own backup"),
    ('[groups.g]\nmembers = []\n', "must not be empty"),
    ('[groups.g]\nmembers = ["ann"]\noverflow = "@g"\n', "cannot overflow to itself"),
    ('[bogus]\nx = 1\n', "unknown key 'bogus'"),
    ('[server]\nspool_dir = "/var/spool/mail call"\n', "must not contain spaces"),
    ('[server]\ngreetings_dir = "greetings"\n', "must be an absolute path"),
])
def test_each_mistake_has_a_clear_message(snippet, words):
    found = problems(BASE + "\n" + snippet)
    assert any(words in p for p in found), found


def test_user_may_narrow_profile():
    text = BASE.replace('description = "basic"', 'description = "basic"\n'
                        '[profiles.basic.features]\nvoicemail = { formats = ["opus", "wav"] }\n'
                        'notify = { mail = true, media = ["sms", "email"] }')
    text += 'overrides = { voicemail = { formats = ["wav"] }, notify = { mail = false } }\n'
    text += 'preferred_medium = "email"\n'
    policy = compile_text(text)
    ann = policy.users["ann"]
    assert ann.features.voicemail.formats == ("wav",)
    assert ann.features.notify.mail is False
    assert policy.profiles["basic"].features.voicemail.formats == ("opus", "wav")


def test_dropins_merge_and_conflicts(tmp_path):
    main_file = tmp_path / "policy.toml"
    main_file.write_text(BASE)
    (tmp_path / "policy.d").mkdir()
    (tmp_path / "policy.d" / "10-sales.toml").write_text(
        '[users.zoe]\nname = "Zoe"\nemail = "zoe@example.test"\nprofile = "basic"\n')
    assert set(load_policy(main_file).users) == {"ann", "zoe"}
    (tmp_path / "policy.d" / "20-clash.toml").write_text('[users.ann]\nname = "Other Ann"\n')
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(main_file)
    assert any("20-clash.toml" in str(p) and "users.ann.name" in str(p)
               and "already set in" in str(p) for p in exc.value.problems)


def test_loading_never_partially_applies(tmp_path):
    """A broken drop-in rejects the whole policy: no half-loaded snapshot exists."""
    shutil.copy(EXAMPLE, tmp_path / "policy.toml")
    (tmp_path / "policy.d").mkdir()
    (tmp_path / "policy.d" / "broken.toml").write_text("[users.x]\nname = 3\n")
    with pytest.raises(PolicyInvalid):
        load_policy(tmp_path / "policy.toml")
