"""`mailcall check`: every problem at once, with file, line, key and a reason to act on."""

from __future__ import annotations

import shutil
import time

import pytest

from mailcall.core.cli import main
from mailcall.core.errors import PolicyInvalid
from mailcall.core.policy.load import compile_text, load_policy

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


def _example_with(old: str, new: str) -> str:
    text = EXAMPLE.read_text()
    assert old in text, old
    return text.replace(old, new)


BERNARD_OVERRIDES = ('overrides = { voicemail = { formats = ["wav"] }, '
                     'reroute = { mobile = false } }')


def test_override_with_an_unknown_medium_is_reported_not_raised(tmp_path, capsys):
    """Issue 10 §5: `media = ["fax"]` emptied the media list and `media[0]` raised IndexError."""
    path = tmp_path / "policy.toml"
    path.write_text(_example_with(BERNARD_OVERRIDES,
                                  'overrides = { notify = { mail = true, media = ["fax"] } }'))
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "users.bernard.overrides.notify.media.0: 'fax' is not one of sms, webhook" in err


def test_users_written_as_a_list_is_an_error_not_an_empty_policy():
    """`users = [...]` was read as "no users": check said OK to a policy with nobody in it."""
    found = problems('users = ["ann", "bob"]\n'
                     '[organisation]\nname = "X"\ndomain = "x.example"\n')
    assert any("t.toml:1: users: must be a table of users" in p for p in found), found


@pytest.mark.parametrize("snippet, key", [
    ('[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = []\n', "users.bea.profile"),
    ('[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "basic"\nschedule = []\n',
     "users.bea.schedule"),
    ('[groups.g]\nmembers = ["ann"]\nmailbox = ["ann"]\n', "groups.g.mailbox"),
    ('[groups.g]\nmembers = ["ann"]\nschedule = { x = 1 }\n', "groups.g.schedule"),
    ('[groups.g]\nmembers = ["ann"]\noverflow = ["@g"]\n', "groups.g.overflow"),
    ('[[absences]]\nuser = ["ann"]\nfrom = 2026-12-01\nuntil = 2026-12-05\n', "absences.0.user"),
])
def test_a_reference_that_is_not_a_name_is_reported_not_looked_up(snippet, key):
    """A list or table where a name belongs raised TypeError (unhashable) in the lookup."""
    found = problems(BASE + "\n" + snippet)
    assert any(f" {key}: must be " in p for p in found), found


@pytest.mark.parametrize("snippet, key", [
    ('[server]\nagi_listen = "127.0.0.1:²"\n', "server.agi_listen"),          # int("²") raised
    ('[server]\nagi_listen = "127.0.0.1:٤٥٧٣"\n', "server.agi_listen"),       # was accepted
    ('[schedules.x]\nmonday = ["٠٨:٣٠-12:30"]\n', "schedules.x.monday.0"),    # was accepted
])
def test_digits_of_other_scripts_are_not_numbers(snippet, key):
    found = problems(BASE + "\n" + snippet)
    assert any(f" {key}: " in p for p in found), found


def test_unknown_key_named_with_a_digit_of_another_script_is_located():
    """`[telephony] "²" = 1`: finding its line took "²" for an array index; int("²") raised."""
    found = problems(BASE + '\n[telephony]\n"²" = 1\n')
    assert any("t.toml:18: telephony.\"²\": unknown key '²'" in p for p in found), found


@pytest.mark.parametrize("snippet, key", [
    ('[users."bea\\n"]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "basic"\n',
     'users."bea\\n"'),
    ('[users.bea]\nname = "Bea"\nemail = "bea\\n@example.test"\nprofile = "basic"\n',
     "users.bea.email"),
    ('[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "basic"\n'
     'extensions = ["102\\n"]\n', "users.bea.extensions.0"),
    ('[users.bea]\nname = "Bea\\nBcc: x@evil.example"\nemail = "bea@example.test"\n'
     'profile = "basic"\n', "users.bea.name"),
    ('[users.bea]\nname = "Bea \\u202eevil"\nemail = "bea@example.test"\nprofile = "basic"\n',
     "users.bea.name"),
    ('[mail]\nvoice_folder = "Voice\\u0085mail"\n', "mail.voice_folder"),
])
def test_a_line_break_or_hidden_character_never_gets_into_a_name(snippet, key):
    """A trailing newline passed `^...$` patterns, and only C0 controls were refused in strings.

    Ids, extensions, addresses and names go into dial strings, Sieve scripts and mail headers.
    """
    found = problems(BASE + "\n" + snippet)
    assert any(f" {key}: " in p for p in found), found


def test_absence_message_may_have_several_lines():
    policy = compile_text(BASE + '\n[[absences]]\nuser = "ann"\nfrom = 2026-12-01\n'
                          'until = 2026-12-05\nmessage = """Back on Monday.\nUrgent: 201."""\n')
    assert policy.absences["ann"][0].message == "Back on Monday.\nUrgent: 201."


@pytest.mark.parametrize("start, until, key", [
    ("0001-01-01", "2026-12-05", "from"), ("2026-12-01", "9999-12-31T23:30:00", "until")])
def test_absence_dates_near_the_ends_of_the_calendar_are_refused(start, until, key):
    """An absence until 9999-12-31 23:30 compiled, then overflowed where the Sieve script
    writes it in UTC (OverflowError, no script for anyone in that batch)."""
    found = problems(BASE + f'\n[[absences]]\nuser = "ann"\nfrom = {start}\nuntil = {until}\n')
    assert any(f" absences.0.{key}: " in p and "years 1971 to 9998" in p for p in found), found


def test_line_limit_must_be_a_whole_number():
    """`agi_line_limit = 2048.0` compiled to a float limit."""
    found = problems(BASE + "\n[server]\nagi_line_limit = 2048.0\n")
    assert any(" server.agi_line_limit: must be 2048" in p for p in found), found


def test_absence_times_with_and_without_offset_when_the_organisation_is_invalid():
    """No valid organisation, no time zone: a naive and an offset time were compared (TypeError)."""
    text = BASE.replace('timezone = "Europe/Paris"', 'timezone = "Mars/Base"')
    found = problems(text + '\n[[absences]]\nuser = "ann"\nfrom = 2026-12-01T00:00:00+01:00\n'
                     'until = 2026-12-05T00:00:00\n'
                     '[[absences]]\nuser = "ann"\nfrom = 2026-12-02T00:00:00\n'
                     'until = 2026-12-06T00:00:00+01:00\n')
    assert any("organisation.timezone" in p for p in found), found
    assert any("overlaps another absence of 'ann'" in p for p in found), found


def _backup_ladder(n: int, *, loop: bool) -> str:
    """n users, each the backup of the two before: a chain of 2**(n/1.4) backup paths."""
    text = BASE
    for i in range(n):
        backups = [f"u{j}" for j in (i + 1, i + 2) if j < n] or (["u0"] if loop else [])
        text += (f'[users.u{i}]\nname = "U{i}"\nemail = "u{i}@example.test"\nprofile = "basic"\n'
                 f'backups = [{", ".join(f"{b!r}" for b in backups)}]\n').replace("'", '"')
    return text


def test_backup_loops_are_found_without_walking_every_path():
    """Every simple backup path was walked: 32 users naming the next two took seconds (40: minutes).

    Each loop is still reported once, at the first user in it, with the users it reaches.
    """
    start = time.perf_counter()
    assert set(compile_text(_backup_ladder(32, loop=False)).users) == {"ann"} | {
        f"u{i}" for i in range(32)}
    found = problems(_backup_ladder(32, loop=True))
    assert time.perf_counter() - start < 1.5
    loops = [p for p in found if "backup chain loops" in p]
    assert len(loops) == 1, loops
    assert "users.u0.backups: backup chain loops: u0 → u1 → u3" in loops[0], loops
    assert "u31 → u0" in loops[0] and "also in this loop: u2, u4" in loops[0], loops


def test_profile_chain_longer_than_pythons_recursion_limit():
    """`extends` was followed by recursion: 1,500 chained profiles raised RecursionError."""
    text = BASE + "".join(f'[profiles.p{i}]\nextends = "p{i + 1}"\n' for i in range(1500))
    text += '[profiles.p1500]\n[profiles.p1500.features]\nring_time = 30\n'
    policy = compile_text(text)
    assert policy.profiles["p0"].features.ring_time == 30
    found = problems(text.replace('[profiles.p1500]\n', '[profiles.p1500]\nextends = "p700"\n'))
    assert any("profiles.p700.extends: 'extends' loops: p700 → p701" in p for p in found), found


def test_directory_plugins_get_a_table_and_may_return_junk(tmp_path):
    """`organisation = 3` reached directory plugins as 3 (the hook promises a mapping),
    and an entry that is not a table made `entry.get` raise AttributeError."""
    from mailcall.core.hookspecs import hookimpl
    from mailcall.core.host.plugin_manager import make_plugin_manager

    seen = []

    class Directory:
        @hookimpl
        def mailcall_directory_users(self, organisation):
            seen.append(dict(organisation))
            return ["not-a-user"]

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Directory())
    path = tmp_path / "policy.toml"
    path.write_text('organisation = 3\n')
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(path, pm=pm)
    found = [str(p) for p in exc.value.problems]
    assert seen == [{}]
    assert any("organisation: must be a table" in p for p in found), found
    assert any("returned str from mailcall_directory_users, which is not a user table"
               in p for p in found), found


def test_a_directory_plugin_returning_one_table_instead_of_a_list_is_named(tmp_path):
    """One user table returned bare (not in a list) was iterated key by key: the
    compiler saw the strings "id", "name", ... as users and never named the plugin."""
    from mailcall.core.hookspecs import hookimpl
    from mailcall.core.host.plugin_manager import make_plugin_manager

    class Directory:
        @hookimpl
        def mailcall_directory_users(self, organisation):
            return {"id": "zoe", "name": "Zoé", "extension": "299"}

    pm = make_plugin_manager()  # the built-in plugins, which the example policy needs
    pm.register(Directory(), name="hr-export")
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE.read_text())
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(path, pm=pm)
    found = [str(p) for p in exc.value.problems]
    assert len(found) == 1, found
    assert "plugin 'hr-export' returned dict from mailcall_directory_users" in found[0]
    assert "MAILCALL_DISABLE_PLUGINS=hr-export" in found[0]


@pytest.mark.parametrize("depth", [50, 400, 2000])
@pytest.mark.parametrize(("opening", "closing"), [("{ a = ", " }"), ("[", "]")])
def test_deeply_nested_values_are_reported_not_raised(tmp_path, capsys, depth, opening, closing):
    """tomllib recurses once per level: ~330 inline tables or ~1000 arrays raised
    RecursionError, and `mailcall check` ended in a traceback."""
    value = opening * depth + "1" + closing * depth
    path = tmp_path / "policy.toml"
    path.write_text(EXAMPLE.read_text() + f"\n[server.deep]\nx = {value}\n")
    assert main(["check", str(path)]) == 2  # too deep, or else an unknown key: reported
    err = capsys.readouterr().err
    assert "Traceback" not in err and "policy.toml" in err
    if depth == 2000:
        assert "nested too deeply" in err


# -- [channels]: what each medium declares (issue 11 §1) ----------------------------------

SMS_USER = ('[profiles.txt]\n[profiles.txt.features]\n'
            'notify = { mail = true, media = ["sms", "webhook"] }\n'
            '[users.bea]\nname = "Bea"\nemail = "bea@example.test"\nprofile = "txt"\n'
            'mobile = "+33612345678"\n')


def test_a_media_setting_is_written_nested_or_flat_the_same_way():
    """`[channels] sms_gateway` and `[channels.sms] gateway` are one key of the sms medium,
    declared by its plugin: both spellings compile to the same settings."""
    nested = compile_text(BASE + '[channels.sms]\ngateway = "{number}@sms.example.test"\n'
                          '[channels.webhook]\nurl = "https://hook.example.test/x"\n' + SMS_USER)
    flat = compile_text(BASE + '[channels]\nsms_gateway = "{number}@sms.example.test"\n'
                        'webhook_url = "https://hook.example.test/x"\n' + SMS_USER)
    for policy in (nested, flat):
        assert dict(policy.channels.of("sms")) == {"gateway": "{number}@sms.example.test"}
        assert dict(policy.channels.of("webhook")) == {"url": "https://hook.example.test/x",
                                                        "timeout": 3.0}
        assert policy.users["bea"].notify_address == "+33612345678"
        assert policy.channels.relay == "127.0.0.1:25"


@pytest.mark.parametrize("snippet, words", [
    ('[channels]\nsms_gateway = "{number}@a.test"\n[channels.sms]\ngateway = "{number}@b.test"\n',
     "t.toml:20: channels.sms.gateway: is set twice, as [channels.sms] gateway and [channels] "
     "sms_gateway: keep one"),
    ('[channels.chat]\nurl = "https://chat.test"\n',
     "t.toml:17: channels.chat: no installed plugin offers the medium 'chat' (offered: sms, "
     "webhook, file, email): install the plugin that adds it, or remove [channels.chat]"),
    ('[channels]\nsms_gatway = "{number}@a.test"\n',
     "t.toml:18: channels.sms_gatway: unknown key 'sms_gatway'; did you mean 'sms_gateway'?"),
    ('[channels.sms]\ngateway = "sms.example.test"\n',
     "t.toml:18: channels.sms.gateway: 'sms.example.test' must be an address template with "
     "{number}, e.g. {number}@sms.example.net"),
    ('[channels.webhook]\ntimeout = 0\n',
     "t.toml:18: channels.webhook.timeout: must be between 0.1 and 60, not 0"),
    ('[channels.webhook]\nurl = "hook.example.test"\n',
     "t.toml:18: channels.webhook.url: 'hook.example.test' must be an http:// or https:// URL"),
    ('[channels.sms]\ngatewey = "{number}@a.test"\n',
     "t.toml:18: channels.sms.gatewey: unknown key 'gatewey'; did you mean 'gateway'?"),
])
def test_media_settings_are_checked_from_their_declaration(snippet, words):
    assert words in problems(BASE + "\n" + snippet)


def test_a_medium_no_plugin_offers_is_a_policy_error_not_a_failed_deposit():
    """`notify_address` raised KeyError for a medium it did not list, so plan_deposit failed
    and the voicemail was parked. A medium nobody declares is now refused at check time,
    and the address of every medium a user may have is resolved when compiling."""
    found = problems(BASE.replace('profile = "basic"', 'profile = "basic"\n'
                                  'preferred_medium = "pager"'))
    assert ("t.toml:15: users.ann.preferred_medium: 'pager' is not one of sms, webhook, file, "
            "email: the notification media the installed plugins offer") in " ".join(found)
    found = problems(BASE + '[profiles.basic.features]\nnotify = { voicemail = true }\n'
                     '[channels]\nfile_path = "/var/log/n.jsonl"\n')
    assert ("t.toml:11: users.ann.preferred_medium: is 'sms' but the user has no 'mobile' "
            "number") in found, found


def test_a_policy_check_plugin_returning_a_string_is_named_not_split_into_letters(tmp_path):
    """`mailcall_policy_checks` returning "x: bad" instead of ["x: bad"] became one policy
    problem per character; collected like every list hook, it names the plugin."""
    from mailcall.core.hookspecs import hookimpl
    from mailcall.core.host.plugin_manager import make_plugin_manager

    class Checks:
        @hookimpl
        def mailcall_policy_checks(self, policy):
            return "users.ann: not allowed here"

    pm = make_plugin_manager(entrypoints=False)
    pm.register(Checks(), name="site-checks")
    path = tmp_path / "policy.toml"
    path.write_text(BASE)
    with pytest.raises(PolicyInvalid) as exc:
        load_policy(path, pm=pm)
    [problem] = [str(p) for p in exc.value.problems]
    assert "plugin 'site-checks' returned str from mailcall_policy_checks" in problem, problem
    assert "MAILCALL_DISABLE_PLUGINS=site-checks" in problem
