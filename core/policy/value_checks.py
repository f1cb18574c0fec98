"""Checking single values of a policy: types, ranges, numbers, addresses, times.

Each checker returns the converted value, or records a Problem and returns
None, so that one pass over the policy finds every mistake at once.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime, time
from enum import Enum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from mailcall.core.errors import Problem
from mailcall.core.policy.files import RawPolicy, key_path, visible

if TYPE_CHECKING:
    from mailcall.core.contracts import Offered

Path = tuple[str, ...]
# Every pattern ends in \Z, not $: "$" also matches before a final line break, which
# let "alice\n" pass as an id and "201\n" as an extension.
_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,62}\Z")
_EXTENSION = re.compile(r"^[0-9]{2,10}\Z")
_RANGE = re.compile(r"^ *([0-9]{1,2}):([0-9]{2}) *- *([0-9]{1,2}):([0-9]{2}) *\Z")
# The languages a policy may name, defined once: deposit/wording.py imports it, and
# tests/deposit/test_messages.py checks its tables have words for each.
LANGUAGES = ("en", "fr")
# An ASCII dot-atom local part (RFC 5322 3.2.3): the only shape that skips the full library check.
_PLAIN_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z")
_E164 = re.compile(r"^\+([1-9][0-9]{6,14})\Z")


class Vocabulary(Enum):
    """Names that the installed plugins declare, not the core (see ``Offered``)."""

    MEDIA = "notification media"
    AUDIO_FORMATS = "audio formats"
    FAX_FORMATS = "fax formats"


class Checker:
    """Collects problems against the raw policy they refer to.

    `offered` is what the installed plugins declare; None (mailcall's own defaults
    file) checks a :class:`Vocabulary` name only as a string.
    """

    def __init__(self, raw: RawPolicy, offered: Offered | None = None) -> None:
        self.raw = raw
        self.offered = offered
        self.problems: list[Problem] = []
        self._domains: dict[str, bool] = {}

    def names(self, vocabulary: Vocabulary) -> tuple[str, ...] | None:
        """The names the plugins offer for `vocabulary` (None: not restricted)."""
        if self.offered is None:
            return None
        if vocabulary is Vocabulary.MEDIA:
            return tuple(self.offered.media)
        if vocabulary is Vocabulary.AUDIO_FORMATS:
            return self.offered.audio_formats
        return self.offered.fax_formats

    def error(self, path: Path, message: str) -> None:
        self.problems.append(Problem(self.raw.file_of(path), key_path(path), visible(message),
                                     self.raw.line_of(path)))

    def table(self, value: Any, path: Path, allowed: Iterable[str],
              required: Iterable[str] = ()) -> dict[str, Any]:
        """A TOML table whose keys must all be known: a typo never silently disables a feature."""
        if not isinstance(value, dict):
            self.error(path, f"must be a table, not {type_name(value)}")
            return {}
        allowed = list(allowed)
        for key in value:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = (f"; did you mean '{close[0]}'?" if close
                        else f"; allowed: {', '.join(allowed)}")
                self.error((*path, key), f"unknown key '{key}'{hint}")
        for key in required:
            if key not in value:
                self.error((*path, key), f"required key '{key}' is missing")
        return {k: v for k, v in value.items() if k in allowed}

    def typed(self, value: Any, path: Path, kind: type | tuple[type, ...], what: str) -> Any:
        if isinstance(value, bool) and kind is not bool:
            self.error(path, f"must be {what}, not a boolean")
            return None
        if not isinstance(value, kind):
            self.error(path, f"must be {what}, not {type_name(value)}")
            return None
        return value

    def string(self, value: Any, path: Path, *, empty: bool = False,
               lines: bool = False) -> str | None:
        """A string with no hidden character; line breaks only where `lines` (texts, not names).

        Hidden is what `display_text` would remove (str.isprintable() is the same rule:
        Unicode's C* and Z* categories but the space): names, folders and templates end up
        in mail headers, Sieve scripts and dial strings, where a line break, a bidi
        override or a zero-width space must not travel.
        """
        s = self.typed(value, path, str, "a string")
        if s is None:
            return None
        if not empty and not s.strip():
            self.error(path, "must not be empty")
            return None
        hidden = next((c for c in s if not c.isprintable() and not (lines and c == "\n")), None)
        if hidden is not None:
            where = "" if lines else " (line breaks included)"
            self.error(path, f"must not contain control or invisible characters{where}: "
                             f"found U+{ord(hidden):04X} at character {s.index(hidden) + 1}")
            return None
        return s

    def boolean(self, value: Any, path: Path) -> bool | None:
        return self.typed(value, path, bool, "true or false")

    def integer(self, value: Any, path: Path, low: int, high: int) -> int | None:
        n = self.typed(value, path, int, "a whole number")
        if n is None:
            return None
        if not low <= n <= high:
            self.error(path, f"must be between {low} and {high}, not {n}")
            return None
        return n

    def number(self, value: Any, path: Path, low: float, high: float) -> float | None:
        n = self.typed(value, path, (int, float), "a number")
        if n is None:
            return None
        if not low <= n <= high:
            self.error(path, f"must be between {low} and {high}, not {n}")
            return None
        return float(n)

    def choice(self, value: Any, path: Path, choices: Iterable[str] | Vocabulary) -> str | None:
        if isinstance(choices, Vocabulary):
            return self._offered(value, path, choices)
        choices = tuple(choices)
        s = self.typed(value, path, str, f"one of {', '.join(choices)}")
        if s is None:
            return None
        if s not in choices:
            self.error(path, f"'{s}' is not one of {', '.join(choices)}")
            return None
        return s

    def strings(self, value: Any, path: Path, item: Callable[[Any, Path], Any] | None = None,
                *, nonempty: bool = False) -> tuple | None:
        """A list whose every item passes `item`; None (problems recorded) if any does not.

        A list is never used with its bad items left out: `media = ["fax"]` would
        otherwise become an empty list of media that nothing downstream expects.
        """
        items = self.typed(value, path, list, "a list")
        if items is None:
            return None
        if nonempty and not items:
            self.error(path, "must not be empty")
            return None
        out = []
        failed = False
        for i, v in enumerate(items):
            checked = (item or self.string)(v, (*path, str(i)))
            if checked is None:
                failed = True
            else:
                out.append(checked)
        if len(set(out)) != len(out):
            self.error(path, "lists the same value twice")
        return None if failed else tuple(out)

    def _offered(self, value: Any, path: Path, vocabulary: Vocabulary) -> str | None:
        names = self.names(vocabulary)
        what = vocabulary.value
        if names is None:
            return self.string(value, path)
        s = self.typed(value, path, str, f"a name of {what} ({', '.join(names) or 'none'})")
        if s is None or s in names:
            return s
        if names:
            self.error(path, f"'{s}' is not one of {', '.join(names)}: the {what} the installed "
                             f"plugins offer; install the plugin that adds '{s}' or pick one "
                             "of those")
        else:
            self.error(path, f"'{s}' is not one of the {what} of the installed plugins: none "
                             f"offers any (see 'mailcall plugins'); install or enable one")
        return None

    def choices(self, value: Any, path: Path, choices: Iterable[str] | Vocabulary, *,
                nonempty: bool = False) -> tuple[str, ...] | None:
        choices = choices if isinstance(choices, Vocabulary) else tuple(choices)
        return self.strings(value, path, lambda v, p: self.choice(v, p, choices), nonempty=nonempty)

    def identifier(self, value: Any, path: Path) -> str | None:
        s = self.typed(value, path, str, "a name")
        if s is not None and not _ID.match(s):
            self.error(path, f"'{s}' is not a valid name: use lower-case letters, digits, "
                             "'-', '_' or '.', starting with a letter or digit")
            return None
        return s

    def extension(self, value: Any, path: Path) -> str | None:
        s = self.typed(value, path, str, 'a string of digits, e.g. "201"')
        if s is not None and not _EXTENSION.match(s):
            self.error(path, f"'{s}' is not an extension: 2 to 10 digits")
            return None
        return s

    def phone(self, value: Any, path: Path, country: str) -> str | None:
        s = self.typed(value, path, str, 'a phone number, e.g. "+33612345678"')
        if s is None:
            return None
        parsed = _e164_number(s)
        if parsed is None:
            try:
                parsed = phonenumbers.parse(s, country)
            except phonenumbers.NumberParseException as exc:
                self.error(path, f"'{s}' is not a phone number: {exc}")
                return None
        if not _valid_number(parsed):
            self.error(path, f"'{s}' is not a valid phone number for its country; "
                             "write it in E.164 form, e.g. +33612345678")
            return None
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)

    def email(self, value: Any, path: Path) -> str | None:
        s = self.typed(value, path, str, "an e-mail address")
        if s is None:
            return None
        local, at, domain = s.rpartition("@")
        if at and _PLAIN_LOCAL.match(local) and self._domain_ok(domain):
            return f"{local}@{domain.lower()}"
        try:
            return validate_email(s, check_deliverability=False, globally_deliverable=False,
                                  test_environment=True).normalized
        except EmailNotValidError as exc:
            self.error(path, f"'{s}' is not a valid e-mail address: {exc}")
            return None

    def _domain_ok(self, domain: str) -> bool:
        """Whether the library accepts `domain`; asked once per domain, as most users share one."""
        known = self._domains.get(domain)
        if known is None:
            try:
                validate_email(f"postmaster@{domain}", check_deliverability=False,
                               globally_deliverable=False, test_environment=True)
                known = True
            except EmailNotValidError:
                known = False
            self._domains[domain] = known
        return known

    def domain(self, value: Any, path: Path) -> str | None:
        s = self.typed(value, path, str, "a mail domain")
        if s is None:
            return None
        try:
            validate_email(f"postmaster@{s}", check_deliverability=False,
                           globally_deliverable=False, test_environment=True)
        except EmailNotValidError as exc:
            self.error(path, f"'{s}' is not a valid mail domain: {exc}")
            return None
        return s.lower()

    def timezone(self, value: Any, path: Path) -> ZoneInfo | None:
        s = self.typed(value, path, str, 'a time zone name, e.g. "Europe/Paris"')
        if s is None:
            return None
        try:
            return ZoneInfo(s)
        except (ZoneInfoNotFoundError, ValueError):
            self.error(path, f"'{s}' is not a known time zone; use an IANA name like Europe/Paris")
            return None

    def country(self, value: Any, path: Path) -> str | None:
        s = self.typed(value, path, str, 'a two-letter country code, e.g. "FR"')
        if s is not None and s.upper() not in phonenumbers.SUPPORTED_REGIONS:
            self.error(path, f"'{s}' is not a country code known for phone numbers")
            return None
        return s.upper() if s else None

    def time_ranges(self, value: Any, path: Path) -> tuple[tuple[time, time], ...] | None:
        if value == "closed":
            return ()
        items = self.typed(value, path, list, 'a list of ranges like ["08:30-12:30"], or "closed"')
        if items is None:
            return None
        ranges = []
        for i, item in enumerate(items):
            p = (*path, str(i))
            m = _RANGE.match(item) if isinstance(item, str) else None
            if not m:
                self.error(p, f"{item!r} is not a range like \"08:30-12:30\"")
                continue
            h1, m1, h2, m2 = (int(g) for g in m.groups())
            if h1 > 23 or m1 > 59 or h2 > 24 or m2 > 59 or (h2 == 24 and m2):
                self.error(p, f"'{item}' is not a valid time range")
                continue
            start = time(h1, m1)
            end = time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2)
            if end <= start:
                self.error(p, f"'{item}' ends before it starts; write opening time first")
                continue
            ranges.append((start, end))
        ranges.sort()
        for (_, end), (start, _) in itertools.pairwise(ranges):
            if start < end:
                self.error(path, "time ranges overlap")
                break
        return tuple(ranges)

    def day(self, value: Any, path: Path) -> date | None:
        if isinstance(value, datetime) or not isinstance(value, date):
            self.error(path, f"must be a date like 2026-12-25, not {type_name(value)}")
            return None
        return value

    def moment(self, value: Any, path: Path, tz: ZoneInfo | None) -> datetime | None:
        if isinstance(value, date) and not isinstance(value, datetime):
            value = datetime(value.year, value.month, value.day)
        if not isinstance(value, datetime):
            self.error(path, f"must be a date-time like 2026-12-01T08:00, not {type_name(value)}")
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz) if tz else value
        return value


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return {
        str: "a string", int: "a whole number", float: "a number", list: "a list",
        dict: "a table", datetime: "a date-time", date: "a date", time: "a time",
    }.get(type(value), type(value).__name__)


def _e164_number(text: str) -> phonenumbers.PhoneNumber | None:
    """A number already written in E.164 form, without the cost of the full parser.

    A policy of 100,000 users holds well over 100,000 numbers, nearly all in
    E.164 form; the country code is looked up in the library's own table and
    validity is still decided by ``phonenumbers.is_valid_number``.
    """
    m = _E164.match(text)
    if not m:
        return None
    digits = m.group(1)
    for size in (1, 2, 3):
        cc = int(digits[:size])
        if cc in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            national = digits[size:]
            if not national or national[0] == "0":
                return None  # leading zeros (e.g. Italy) need the full parser
            return phonenumbers.PhoneNumber(country_code=cc, national_number=int(national))
    return None


@functools.lru_cache(maxsize=512)
def _numbering_plan(country_code: int) -> re.Pattern[str] | None:
    """The national number pattern of a country code owned by one region (None: shared)."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) != 1 or regions[0] == "001":
        return None
    meta = phonenumbers.PhoneMetadata.metadata_for_region(regions[0])
    if meta is None or meta.general_desc is None or not meta.general_desc.national_number_pattern:
        return None
    return re.compile(meta.general_desc.national_number_pattern)


def _valid_number(number: phonenumbers.PhoneNumber) -> bool:
    """The library's possible-length check plus the country's numbering plan.

    ``is_valid_number`` also tries each number type (fixed, mobile, ...) one by
    one, which made compiling 100,000 users take seconds; the plan's general
    pattern is what those types share. Shared country codes (+1, +7) keep the
    full check, whose answer depends on the region.
    """
    plan = _numbering_plan(number.country_code)
    if plan is None or number.italian_leading_zero:
        return phonenumbers.is_valid_number(number)
    return (phonenumbers.is_possible_number(number)
            and plan.fullmatch(str(number.national_number)) is not None)
