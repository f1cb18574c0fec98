"""The out-of-office a user set in their mail client (Roundcube, Thunderbird), made visible.

How the two auto-replies coexist (docs/user-settings.md, "Out-of-office set in the
mail client"): Dovecot decides, in one place. mailcall's reply is a ``vacation``
in the per-user script ``sieve_before2`` runs, *before* the user's own script.
While it applies, Pigeonhole itself drops a ``vacation`` of a later script of the
same delivery as a duplicate of one already executed, silently and without error
(pigeonhole 0.5.19 ``cmd-vacation.c`` ``act_vacation_check_duplicate``, with
``sieve.c`` ``sieve_multiscript_run`` executing each script's result before the
next runs): the sender gets mailcall's answer alone, and the rest of the user's
script (``fileinto``...) still applies. When no mailcall absence covers the
moment, the user's own vacation answers as they wrote it.

So nothing in a user's script needs rewriting; what is left is to *show* the user
(and mailcall's page) that their client's vacation exists and when it is
overruled. This module finds the ``vacation`` commands a script would run, with
their words and the date guards Roundcube writes (``currentdate ... "ge"`` /
``"le"``), in the command tree of :mod:`.sieve_syntax`, and says who answers
(:func:`who_answers`). It never evaluates or changes the script. The scripts are
read over ManageSieve as the user by :mod:`.client_scripts`;
``mailcall sieve client-vacation < script.sieve`` prints what it finds, for IT
reading a user's script with ``doveadm -f json sieve get -u USER NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from mailcall.core.policy.model import Absence, Policy
from mailcall.core.text import display_text

from .sieve_syntax import Arg, Command, Test, Token, parse

# -- what a script's vacation says ------------------------------------------------------

@dataclass(frozen=True)
class ClientVacation:
    """One ``vacation`` a user's script can run, as written (outside text: show it through
    :func:`mailcall.core.text.display_text`, as :meth:`describe` does)."""

    script: str
    line: int
    reason: str
    subject: str | None = None
    sender: str | None = None
    """``:from``."""
    days: int | None = None
    start: date | datetime | None = None
    """From a ``currentdate`` guard ``"ge"``/``"gt"`` (Roundcube's "from" date), the first
    day it answers: a ``"gt" "date"`` guard's day is already the next one."""
    until: date | datetime | None = None
    """From a ``currentdate`` guard ``"le"``/``"lt"`` (Roundcube's "until" date), the last
    day it answers: a ``"lt" "date"`` guard's day is already the day before."""
    conditional: bool = False
    """Guarded by other tests too (only some senders or subjects get it)."""
    start_excluded: bool = False
    """A date-time `start` from ``"gt"``: that very second does not answer yet."""
    until_excluded: bool = False
    """A date-time `until` from ``"lt"``: that very second answers no more."""

    def covers(self, moment: datetime) -> bool | None:
        """Whether its date guards let it answer at `moment` (None: it depends on the mail).

        Dates are compared on `moment`'s calendar (pass it in the organisation's time
        zone): a guard's ``:zone`` is not applied, so a day's first or last hour may be
        off by the difference. What is shown, not what Dovecot decides."""
        for bound, after, excluded in ((self.start, True, self.start_excluded),
                                       (self.until, False, self.until_excluded)):
            if bound is None:
                continue
            if isinstance(bound, datetime):
                # A bound without an offset is wall time (the script's :zone, or the
                # server's): compared with `moment`'s own wall time.
                here = (moment.astimezone(bound.tzinfo) if bound.tzinfo
                        else moment.replace(tzinfo=None))
                if here == bound and excluded:
                    return False
                if (here < bound) if after else (here > bound):
                    return False
            else:
                day = moment.date()
                if (day < bound) if after else (day > bound):
                    return False
        return None if self.conditional else True

    def describe(self) -> str:
        """One line for a log or a terminal, outside text cleaned."""
        when = ""
        if self.start or self.until:
            when = (f" from {self.start.isoformat() if self.start else '…'}"
                    f" until {self.until.isoformat() if self.until else '…'}")
        subject = f" subject {display_text(self.subject, 80)!r}" if self.subject else ""
        return (f"vacation in script {display_text(self.script, 80)!r} line {self.line}"
                f"{when}{subject}{' (only for some mail)' if self.conditional else ''}: "
                f"{display_text(self.reason, 120)!r}")


def vacations(script: str, name: str = "") -> tuple[list[ClientVacation], list[str]]:
    """The vacations `script` can run, and the personal scripts it includes (RFC 6609).

    A rule behind a literal ``false`` (Roundcube's disabled rule: ``if false # ...``)
    cannot run and is left out. Raises :class:`SieveSyntaxError` for what is not Sieve.
    """
    found: list[ClientVacation] = []
    includes: list[str] = []
    _walk(parse(script), [], name, found, includes)
    return found, includes


def _walk(commands: list[Command], guards: list[Test], name: str,
          found: list[ClientVacation], includes: list[str]) -> None:
    previous: list[Test] = []  # tests of the if/elsif before: an elsif runs when they fail
    for cmd in commands:
        if cmd.name in ("if", "elsif", "else"):
            if cmd.name == "if":
                previous = []
            here = list(cmd.tests) if cmd.name != "else" else []
            negated = [Test("not", tests=[t]) for t in previous]
            if cmd.block is not None and not any(_never(t) for t in here):
                _walk(cmd.block, guards + negated + here, name, found, includes)
            previous = previous + here
            continue
        previous = []
        if cmd.name == "vacation":
            found.append(_vacation(cmd, guards, name))
        elif cmd.name == "include":
            where = [a.value for a in cmd.args if isinstance(a, Token) and a.kind == "tag"]
            target = next((a for a in cmd.args if isinstance(a, str)), None)
            if target is not None and ":global" not in where:
                includes.append(target)
        elif cmd.block is not None:
            _walk(cmd.block, guards, name, found, includes)


def _never(test: Test) -> bool:
    """A test that is false whatever the message: ``false``, ``not true``, ``allof`` with one."""
    if test.name == "false":
        return True
    if test.name == "not" and test.tests and test.tests[0].name == "true":
        return True
    return test.name == "allof" and any(_never(t) for t in test.tests)


def _vacation(cmd: Command, guards: list[Test], name: str) -> ClientVacation:
    tags: dict[str, Arg] = {}
    reason = ""
    args = list(cmd.args)
    while args:
        arg = args.pop(0)
        if isinstance(arg, Token) and arg.kind == "tag":
            if arg.value in (":days", ":seconds", ":subject", ":from", ":addresses", ":handle"):
                tags[arg.value] = args.pop(0) if args else ""
            # :mime has no value
        elif isinstance(arg, str):
            reason = arg
    days = tags.get(":days")
    (start, start_excluded), (until, until_excluded), conditional = _dates(guards)
    subject, sender = tags.get(":subject"), tags.get(":from")
    return ClientVacation(
        script=name, line=cmd.line, reason=reason,
        subject=subject if isinstance(subject, str) else None,
        sender=sender if isinstance(sender, str) else None,
        days=int(days.value) if isinstance(days, Token) and days.value.isdigit() else None,
        start=start, until=until, conditional=conditional,
        start_excluded=start_excluded, until_excluded=until_excluded)


Bound = tuple[date | datetime | None, bool]
"""A moment and whether it is excluded (a date-time from ``"gt"``/``"lt"``)."""


def _dates(guards: list[Test]) -> tuple[Bound, Bound, bool]:
    start: Bound = (None, False)
    until: Bound = (None, False)
    conditional = False
    for test in _flatten(guards):
        if test.name == "true" or (test.name == "not" and test.tests
                                    and _never(test.tests[0])):
            continue
        bound = _date_bound(test) if test.name == "currentdate" else None
        if bound is None:
            conditional = True
            continue
        side, value, excluded = bound
        if side == "start":
            start = (value, excluded)
        else:
            until = (value, excluded)
    return start, until, conditional


def _flatten(tests: list[Test]) -> list[Test]:
    out = []
    for test in tests:
        if test.name == "allof":
            out += _flatten(test.tests)
        else:
            out.append(test)
    return out


def _date_bound(test: Test) -> tuple[str, date | datetime, bool] | None:
    """("start"|"until", moment, excluded) of ``currentdate :value "ge" "date" "2026-12-01"``.

    ``"gt"``/``"lt"`` are strict (RFC 5231): a day is moved to the first (last) day that
    answers, so that `start`/`until` always read inclusively; a date-time is kept, marked
    excluded.
    """
    relation, strings = None, []
    args = list(test.args)
    while args:
        arg = args.pop(0)
        if isinstance(arg, Token) and arg.value == ":value" and args and isinstance(args[0],
                                                                                    str):
            relation = args.pop(0)
        elif isinstance(arg, Token) and arg.value in (":zone", ":comparator") and args:
            args.pop(0)
        elif isinstance(arg, str):
            strings.append(arg)
        elif isinstance(arg, list) and len(arg) == 1:
            strings.append(arg[0])
    if relation not in ("ge", "gt", "le", "lt") or len(strings) != 2:
        return None
    part, value = strings
    try:
        moment: date | datetime = (date.fromisoformat(value) if part == "date"
                                   else datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None
    if part not in ("date", "iso8601"):
        return None
    side = "start" if relation in ("ge", "gt") else "until"
    strict = relation in ("gt", "lt")
    if strict and not isinstance(moment, datetime):
        try:
            moment += timedelta(days=1 if side == "start" else -1)
        except OverflowError:  # "gt" "9999-12-31": never; not a guard mailcall can say
            return None
        strict = False
    return side, moment, strict


# -- what a user's account holds, and who answers a sender now ---------------------

@dataclass(frozen=True)
class ClientScripts:
    """What a user's ManageSieve account holds that answers mail by itself."""

    active: str | None
    """The active script's name (None: no script is active, nothing of the user's runs)."""
    vacations: tuple[ClientVacation, ...]
    problems: tuple[str, ...] = ()
    """Scripts that could not be read (named, with why): their vacations are unknown."""


@dataclass(frozen=True)
class Answer:
    """Which auto-reply a person writing to the user gets at a moment, and why.

    `by`: "mailcall" (an absence in the policy file or the user store covers the
    moment and the profile grants the auto-reply: the client's vacation is not sent),
    "client" (the mail client's vacation answers, as the user wrote it), "none", or
    "unknown" (the client's scripts could not be read: mailcall's absence alone is known).
    """

    by: str
    absence: Absence | None = None
    """mailcall's absence that answers (by == "mailcall")."""
    client: tuple[ClientVacation, ...] = ()
    """The client's vacations that would answer now: sent when by == "client", overruled
    (not sent) when by == "mailcall"."""


def who_answers(policy: Policy, user_id: str, moment: datetime,
                client: ClientScripts | None) -> Answer:
    """The one rule Dovecot applies (module docstring), said before any mail arrives.

    `policy` is the refined view (``decision_policy``), so the user's own absences
    count; `client` is what :func:`.client_scripts.read_client_vacation` found
    (None: not read).
    """
    user = policy.users[user_id]
    moment = policy.local(moment)
    mine = next((a for a in policy.absences.get(user_id, ())
                 if policy.local(a.start) <= moment < policy.local(a.until)), None)
    theirs = tuple(v for v in (client.vacations if client else ())
                   if v.covers(moment) is not False)
    if mine is not None and user.email and user.features.auto_reply:
        return Answer("mailcall", mine, theirs)
    if client is None or (client.problems and not theirs):
        return Answer("unknown")
    return Answer("client", None, theirs) if theirs else Answer("none")
