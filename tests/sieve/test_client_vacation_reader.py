"""Reading a mail client's vacation out of a Sieve script, and who answers a sender.

The scripts are the forms Roundcube, Nextcloud Mail and hand-written Thunderbird scripts
use; what the reader finds in a real server's script is tested in
test_client_vacation_dovecot.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pytest

from mailcall.sieve.client_vacation import vacations
from mailcall.sieve.sieve_syntax import SieveSyntaxError
from tests.support import REPO

ROUNDCUBE = """require ["fileinto","date","relational","vacation"];
# rule:[Devis]
if header :contains "subject" "Devis"
{
\tfileinto "Devis";
}
# rule:[Absence]
if allof (currentdate :zone "+0100" :value "ge" "date" "2026-12-01", \
currentdate :zone "+0100" :value "le" "date" "2026-12-20")
{
\tvacation :days 1 :subject "Absente" :from "alice@stockinox.example" "Je suis \\"absente\\".";
}
"""

NEXTCLOUD = """### Nextcloud Mail: Vacation Responder ### DON'T EDIT ###
require "date";
require "relational";
require "vacation";
if allof(currentdate :value "ge" "iso8601" "2022-09-01T23:00:00Z", \
currentdate :value "le" "iso8601" "2022-09-08T22:59:00Z") {
\tvacation :days 4 :subject "On vacation" :addresses ["a@x.org"] "I'm on vacation.";
}
"""

MULTILINE = """require "vacation";
/* written by hand in Thunderbird's Sieve editor */
if not header :contains "list-id" "" {
  vacation :days 3 text:
Bonjour,
..je reviens le 12.
.
;
}
"""


def test_roundcube_dates_words_and_line():
    [v], includes = vacations(ROUNDCUBE, "roundcube")
    assert includes == []
    assert (v.script, v.line, v.subject, v.sender, v.days) == (
        "roundcube", 10, "Absente", "alice@stockinox.example", 1)
    assert v.reason == 'Je suis "absente".'
    assert (v.start, v.until, v.conditional) == (date(2026, 12, 1), date(2026, 12, 20), False)
    assert v.covers(datetime(2026, 12, 5, 12, tzinfo=UTC)) is True
    assert v.covers(datetime(2026, 12, 21, 12, tzinfo=UTC)) is False
    assert v.covers(datetime(2026, 11, 30, 12, tzinfo=UTC)) is False


def test_nextcloud_iso8601_guards():
    [v], _ = vacations(NEXTCLOUD)
    assert v.start == datetime(2022, 9, 1, 23, 0, tzinfo=UTC)
    assert v.until == datetime(2022, 9, 8, 22, 59, tzinfo=UTC)
    assert v.covers(datetime(2022, 9, 9, tzinfo=UTC)) is False


def test_iso8601_dates_without_an_offset():
    script = NEXTCLOUD.replace("2022-09-01T23:00:00Z", "2022-09-02").replace(
        "2022-09-08T22:59:00Z", "2022-09-08")
    [v], _ = vacations(script)
    assert v.start == datetime(2022, 9, 2) and v.start.tzinfo is None
    assert v.covers(datetime(2022, 9, 5, 10, tzinfo=UTC)) is True
    assert v.covers(datetime(2022, 9, 1, 10, tzinfo=UTC)) is False


def guarded(relation: str, part: str, value: str):
    [v], _ = vacations('require ["date","relational","vacation"];\n'
                       f'if currentdate :value "{relation}" "{part}" "{value}" {{\n'
                       '  vacation "away";\n}\n')
    return v


@pytest.mark.parametrize(("relation", "first", "last", "inside", "outside"), [
    # "ge"/"le" include the day named; "gt"/"lt" (RFC 5231: strictly greater/less) do not.
    ("ge", date(2026, 12, 12), None, datetime(2026, 12, 12, 0, 30), datetime(2026, 12, 11, 23)),
    ("gt", date(2026, 12, 13), None, datetime(2026, 12, 13, 0, 30), datetime(2026, 12, 12, 23)),
    ("le", None, date(2026, 12, 12), datetime(2026, 12, 12, 23), datetime(2026, 12, 13, 0, 30)),
    ("lt", None, date(2026, 12, 11), datetime(2026, 12, 11, 23), datetime(2026, 12, 12, 0, 30)),
])
def test_each_date_relation(relation, first, last, inside, outside):
    v = guarded(relation, "date", "2026-12-12")
    assert (v.start, v.until) == (first, last)  # always the first and last day answered
    assert v.covers(inside.replace(tzinfo=UTC)) is True
    assert v.covers(outside.replace(tzinfo=UTC)) is False


@pytest.mark.parametrize(("relation", "at_the_bound"), [
    ("ge", True), ("gt", False), ("le", True), ("lt", False)])
def test_each_iso8601_relation(relation, at_the_bound):
    v = guarded(relation, "iso8601", "2026-12-12T18:00:00Z")
    bound = datetime(2026, 12, 12, 18, tzinfo=UTC)
    assert (v.start or v.until) == bound
    assert v.covers(bound) is at_the_bound
    second = timedelta(seconds=1)
    assert v.covers(bound + second) is (relation in ("ge", "gt"))
    assert v.covers(bound - second) is (relation in ("le", "lt"))


def test_who_answers_honours_a_strict_until():
    """mailcall's own scripts write "lt": a client vacation "lt" the 12th no longer answers
    on the 12th (it used to be read as "le")."""
    from mailcall.core.policy.load import compile_text
    from mailcall.sieve.client_vacation import ClientScripts, who_answers
    from tests.support.policies import example_policy_text

    policy = compile_text(example_policy_text())
    client = ClientScripts("roundcube", (guarded("lt", "date", "2026-12-12"),))
    assert who_answers(policy, "alice", datetime(2026, 12, 11, 15, tzinfo=UTC),
                       client).by == "client"
    assert who_answers(policy, "alice", datetime(2026, 12, 12, 15, tzinfo=UTC),
                       client).by == "none"


def test_multiline_text_and_other_guards():
    [v], _ = vacations(MULTILINE)
    assert v.reason == "Bonjour,\n.je reviens le 12.\n"  # dot-stuffing undone (RFC 5228 §2.4.2)
    assert v.conditional and v.start is None and v.until is None
    assert v.covers(datetime(2026, 12, 1, tzinfo=UTC)) is None


def test_disabled_rules_cannot_run_and_are_not_reported():
    disabled = ROUNDCUBE.replace("if allof (currentdate", "if false # allof (currentdate")
    # Roundcube comments out the rest of the test after "if false #": the guard is gone.
    assert vacations(disabled)[0] == []
    assert vacations('require "vacation";\nif not true { vacation "x"; }\n')[0] == []


def test_elsif_else_and_includes():
    script = """require ["vacation", "include"];
if header :is "x" "y" { keep; }
elsif true { vacation "second"; }
else { vacation "third"; }
include :personal "vacances";
include :global "admin";
"""
    found, includes = vacations(script)
    assert [v.reason for v in found] == ["second", "third"]
    assert all(v.conditional for v in found)  # each runs only when the tests before fail
    assert includes == ["vacances"]


def test_not_sieve_is_refused_clearly():
    with pytest.raises(SieveSyntaxError, match="line 2"):
        vacations('require "vacation";\nvacation "x"\n')
    with pytest.raises(SieveSyntaxError, match="text:"):
        vacations('require "vacation";\nvacation text:\nno end\n')


def test_hostile_words_are_shown_clean():
    [v], _ = vacations('require "vacation";\nvacation :subject "A\\u202eB" "x\u202eevil\u0007";\n')
    line = v.describe()
    assert "\u202e" not in line and "\u0007" not in line


CLI = [sys.executable, "-m", "mailcall.core.cli", "sieve", "client-vacation"]
"""``mailcall sieve client-vacation``, as IT runs it (docs/user-settings.md)."""


def test_the_command_line_reads_stdin():
    out = subprocess.run([*CLI, "--json"],
                         input=ROUNDCUBE, capture_output=True, text=True, check=True, cwd=REPO)
    data = json.loads(out.stdout)
    assert data["vacations"][0]["until"] == "2026-12-20"
    # doveadm -f json sieve get's output, as docs/user-settings.md pipes it.
    doveadm = json.dumps([{"sieve script": ROUNDCUBE}])
    out = subprocess.run(CLI,
                         input=doveadm, capture_output=True, text=True, check=True, cwd=REPO)
    assert "until 2026-12-20 subject 'Absente'" in out.stdout


# -- who answers ---------------------------------------------------------------------------

def test_who_answers_follows_the_one_rule():
    from mailcall.core.policy.load import compile_text
    from mailcall.sieve.client_vacation import ClientScripts, who_answers
    from tests.support.policies import example_policy_text

    policy = compile_text(example_policy_text())  # emma is away 2026-12-01 to 12-13
    away, back = datetime(2026, 12, 5, 10, tzinfo=UTC), datetime(2026, 12, 15, 10, tzinfo=UTC)
    [theirs], _ = vacations(ROUNDCUBE, "roundcube")  # 2026-12-01 to 2026-12-20
    client = ClientScripts("roundcube", (theirs,))
    assert who_answers(policy, "emma", away, client).by == "mailcall"
    assert who_answers(policy, "emma", away, client).client == (theirs,)  # overruled
    assert who_answers(policy, "emma", back, client).by == "client"
    assert who_answers(policy, "emma", datetime(2026, 12, 25, tzinfo=UTC), client).by == "none"
    assert who_answers(policy, "alice", away, ClientScripts(None, ())).by == "none"
    assert who_answers(policy, "alice", away, None).by == "unknown"
    assert who_answers(policy, "emma", away, None).by == "mailcall"  # known without reading
    unreadable = ClientScripts("roundcube", (), ("'roundcube': line 3: ...",))
    assert who_answers(policy, "alice", away, unreadable).by == "unknown"
    # A profile without the auto-reply: mailcall sends none, the client's answers.
    no_reply = compile_text(example_policy_text(
        {"profiles": {"sales": {"features": {"auto_reply": False}}}}))
    assert who_answers(no_reply, "emma", away, client).by == "client"
