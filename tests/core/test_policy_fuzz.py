"""Policy input never raises: any TOML an admin (or a drop-in) writes gives a policy or problems.

Issue 10 §5. The fuzzer starts from the example policy and mutates its structure:
values replaced by other TOML types, keys dropped, keys added (known ones in the wrong
place, unknown ones), arrays emptied, references to users, groups, schedules and
profiles that do not exist, tables where values belong and the reverse, strings with
control, format and non-ASCII digit characters, and part of the policy moved into a
`policy.d/` drop-in. Each mutated document is written as TOML text by tomli_w and
given to the real loader (`load_policy` with the installed plugins) and to the real
`mailcall check` entry point, text and JSON. Either the policy compiles and `check`
exits 0, or every problem names a file and a reason and `check` exits 2; never an
exception, and the two always agree.

CI runs a fixed set of 300 examples (``derandomize=True``, no example database): the
same inputs on every run and every machine, so a red CI always means a change of the
code, never a new draw; a crash found there is replayed by running the test again.
``MAILCALL_FUZZ_EXAMPLES=N`` explores N fresh random examples instead, to look for
new crashes locally.

300 random draws cannot promise that one given key meets one given change (the
crashes on "127.0.0.1:²" or on a key named "²" were missed by 6,000). A second test
therefore sweeps every kind of place of the policy with every TOML type, removal,
renaming and string edit, once each, through the same loader.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import tempfile
import tomllib
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from mailcall.core.cli import main
from mailcall.core.errors import PolicyInvalid
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.policy import features as feat
from mailcall.core.policy.compile import DAYS, TOP
from mailcall.core.policy.load import compile_text, load_policy
from mailcall.core.policy.model import Policy
from mailcall.core.text import display_text

from .conftest import EXAMPLE


def _seed() -> dict[str, Any]:
    """The example policy with every section and key it leaves out written in.

    A key the seed lacks is only reached by an "add" mutation landing in the right
    table; with all of them present, every check of the compiler gets fuzzed values.
    """
    doc = tomllib.loads(EXAMPLE.read_text(encoding="utf-8"))
    defaults = feat.load_defaults()
    doc["server"] = {**defaults["server"], "sieve_socket": "/run/dovecot/sieve-execute/mailcall"}
    doc["delivery"] = {**defaults["delivery"], "sender": "mailcall@stockinox.example"}
    doc["telephony"]["max_steps"] = 8
    doc["mail"]["auto_reply_days"] = 2
    doc["channels"].update(webhook_url="https://hooks.stockinox.example/mailcall",
                           webhook_timeout=3.0, file_path="/var/lib/mailcall/notify.log")
    doc["schedules"]["office"]["saturday"] = "closed"
    features = copy.deepcopy(defaults["features"])
    features["notify"].update(mail=True, media=["webhook", "sms", "email", "file"],
                              senders=["@stockinox.example", "boss@client.example"])
    doc["profiles"]["full"] = {"description": "every feature written out", "extends": "sales",
                               "locked": ["ring_time", "fax"], "features": features}
    doc["users"]["frank"] = {
        "name": "Frank Moreau", "email": "frank@stockinox.example", "profile": "full",
        "extensions": ["206", "2060"], "numbers": ["01 40 00 02 06"], "mobile": "06 11 22 33 55",
        "preferred_medium": "webhook", "backups": ["alice", "@night"], "language": "en",
        "schedule": "office",
        "overrides": {"notify": {"media": ["webhook"], "hours": "always"}, "greetings": []},
    }
    doc["groups"]["night"] = {"name": "Permanence", "members": ["alice", "bernard"],
                              "strategy": "in-order", "ring_time": 15, "overflow": "@reception",
                              "mailbox": "alice", "extensions": ["209"],
                              "numbers": ["+33140000209"], "schedule": "office"}
    doc["absences"].append({"user": "frank", "from": date(2026, 7, 1),
                            "until": datetime(2026, 7, 15, 12, 0), "backup": "@night"})
    return doc


EXAMPLE_DATA = _seed()

_EXPLORE = int(os.environ.get("MAILCALL_FUZZ_EXAMPLES", "0"))
FUZZ = settings(max_examples=_EXPLORE or 300, deadline=None, derandomize=not _EXPLORE,
                database=None, suppress_health_check=[HealthCheck.too_slow],
                print_blob=True)


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value).union(*(_keys(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value))
    return set()


def _schema_keys(spec: dict[str, Any]) -> set[str]:
    return set(spec).union(*(set(v) for v in spec.values() if isinstance(v, dict)))


# Known keys, added anywhere: right key in the wrong table, and the reverse.
KNOWN_KEYS = sorted(_keys(EXAMPLE_DATA) | set(TOP) | set(DAYS) | _schema_keys(feat.SCHEMA)
                    | {"overflow", "sieve_socket", "webhook_url", "file_path", "agi_line_limit"})
# What a reference can name: defined ones, undefined ones, and shapes that are neither.
REFERENCES = ["alice", "bernard", "carole", "@reception", "office", "sales", "reception",
              "ghost", "@ghost", "@alice", "@", "", "@@reception", "Alice", "alice ",
              "alice\n", "office\x00", "sales/../office"]
# Strings that come close to valid values, so that later checks are reached too.
NEAR_VALID = ["closed", "08:30-12:30", "٠٨:٣٠-12:30", "24:00-25:00", "+33612345678",
              "0612345678", "+33612345678\n", "{number}@sms.example", "{extension}",
              "PJSIP/{extension}", "PJSIP/{number}@trunk,tT", "127.0.0.1:4573", "127.0.0.1:²",
              "[::1]:4573", ":4573", "unix:/run/x", "unix:relative", "/var/spool/mailcall",
              "/var/spool/mail call", "https://x.example/h", "ftp://x", "alice@stockinox.example",
              "x\n@stockinox.example", "@stockinox.example", "a@b@c", "Europe/Paris", "Europe",
              "../../etc/passwd", "fr", "en", "FR", "ZZ", "sms", "fax", "email", "webhook",
              "file", "opus", "flac", "always", "office", "outside-office", "lmtp", "smtp",
              "all", "in-order", "busy", "absence", "scrypt$16384$8$1$AAAA$BBBB", "2048"]
ODD_CHARS = st.sampled_from(["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x7f", "\x85", "\u2028",
                             "\u202e", "\u200b", "\ufeff", "\U0010ffff", "²", "٣", "１", "é",
                             "{", "}", "\"", "'", "\\", "$", "@", "+", ":", "/", ".", "-", "_",
                             "[", "]", "=", "#", ",", "&", "|", ";", " "])
TEXT = st.one_of(st.text(st.one_of(ODD_CHARS, st.characters(codec="utf-8")), max_size=12),
                 st.sampled_from(NEAR_VALID), st.sampled_from(REFERENCES))
KEY = st.one_of(st.sampled_from(KNOWN_KEYS), TEXT)
OFFSETS = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30)),
                           timezone(timedelta(hours=-11))])
SCALAR = st.one_of(
    TEXT,
    st.integers(-3, 9000), st.integers(-2**63, 2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([2048.0, 20.0, 0.0, -0.0]),
    st.booleans(),
    st.builds(lambda d, tz: d.replace(tzinfo=tz),
              st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30)), OFFSETS),
    st.dates(date(1, 1, 1), date(9999, 12, 31)),
    st.times(),
)
VALUE = st.recursive(SCALAR, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEY, inner, max_size=3)), max_leaves=6)


# What happens to a string on its way into a policy: a pasted line break, a digit from
# another script (str.isdigit() and int() accept "²" or "٣" differently), a control or
# bidi character, blanks, case.
STRING_EDITS: dict[str, Any] = {
    "line break after": lambda s: s + "\n",
    "space before": lambda s: " " + s,
    "superscript digits": lambda s: "".join("²" if c.isdigit() else c for c in s),
    "arabic-indic digits": lambda s: "".join(chr(0x660 + int(c)) if c in "0123456789" else c
                                             for c in s),
    "NUL inside": lambda s: s[:1] + "\x00" + s[1:],
    "bidi override": lambda s: "\u202e" + s,
    "DEL after": lambda s: s + "\x7f",
    "upper case": str.upper,
    "emptied": lambda s: "",
}
# One value of every TOML type, for the systematic sweep.
EVERY_TYPE: dict[str, Any] = {
    "string": "x", "integer": 7, "big integer": 2**63 - 1, "float": 2048.0, "nan": float("nan"),
    "boolean": True, "date": date(2026, 12, 1), "local date-time": datetime(2026, 12, 1, 8),
    "offset date-time": datetime(2026, 12, 1, 8, tzinfo=timezone(timedelta(hours=2))),
    "time": time(8, 30), "empty array": [], "array": ["x", 1], "empty table": {},
    "table": {"x": 1}, "array of tables": [{"x": 1}],
}


def _paths(doc: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in the document, as a tuple of dict keys and list indexes."""
    out = [prefix] if prefix else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def _get(doc: Any, path: tuple) -> Any:
    return _parent(doc, path)[path[-1]]


def _mutate(data: st.DataObject, doc: dict[str, Any]) -> None:
    paths = _paths(doc)
    if not paths:
        doc.update(data.draw(st.dictionaries(KEY, VALUE, max_size=2)))
        return
    path = data.draw(st.sampled_from(paths))
    parent, last = _parent(doc, path), path[-1]
    here = _get(doc, path)
    kind = data.draw(st.sampled_from(["replace", "drop", "add", "empty", "reference", "odd text",
                                      "wrap", "unwrap", "swap with sibling"]))
    event(f"mutation: {kind}")
    if kind == "replace":
        parent[last] = data.draw(VALUE)
    elif kind == "drop":
        del parent[last]
    elif kind == "add":
        target = here if isinstance(here, dict) else parent
        if isinstance(target, dict):
            target[data.draw(KEY)] = data.draw(VALUE)
        else:
            target.append(data.draw(VALUE))
    elif kind == "empty":
        parent[last] = data.draw(st.sampled_from([[], {}, "", [[]], [{}]]))
    elif kind == "reference":
        ref = data.draw(st.sampled_from(REFERENCES))
        parent[last] = data.draw(st.sampled_from([ref, [ref], [ref, ref], ["bernard", ref]]))
    elif kind == "odd text":
        if isinstance(here, str) and data.draw(st.booleans()):
            parent[last] = STRING_EDITS[data.draw(st.sampled_from(sorted(STRING_EDITS)))](here)
        elif isinstance(here, str):
            at = data.draw(st.integers(0, len(here)))
            parent[last] = here[:at] + data.draw(st.text(ODD_CHARS, min_size=1, max_size=3)) \
                + here[at:]
        else:
            parent[last] = data.draw(TEXT)
    elif kind == "wrap":
        parent[last] = data.draw(st.sampled_from([[here], {"value": here}, {last: here}
                                                  if isinstance(last, str) else [[here]]]))
    elif kind == "unwrap":
        if isinstance(here, dict) and here:
            parent[last] = next(iter(here.values()))
        elif isinstance(here, list) and here:
            parent[last] = here[0]
        else:
            parent[last] = data.draw(SCALAR)
    else:
        siblings = [p for p in paths if len(p) == len(path) and p != path]
        if siblings:
            other = data.draw(st.sampled_from(siblings))
            try:
                a, b = copy.deepcopy(here), copy.deepcopy(_get(doc, other))
                _parent(doc, other)[other[-1]] = a
                parent[last] = b
            except (KeyError, IndexError, TypeError):
                pass  # the sibling was inside what moved: leave the document as it is


def _split(data: st.DataObject, doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The main file and, sometimes, a drop-in that takes part of it (or repeats part of it)."""
    files = {"policy.toml": doc}
    if not doc or not data.draw(st.integers(0, 3)) == 0:
        return files
    key = data.draw(st.sampled_from(sorted(doc)))
    how = data.draw(st.sampled_from(["move", "repeat", "repeat part"]))
    event(f"drop-in: {how}")
    value = doc[key]
    if how == "move":
        del doc[key]
        files["policy.d/50-fuzz.toml"] = {key: value}
    elif how == "repeat":
        files["policy.d/50-fuzz.toml"] = {key: copy.deepcopy(value)}
    elif isinstance(value, dict) and value:
        sub = data.draw(st.sampled_from(sorted(value)))
        files["policy.d/50-fuzz.toml"] = {key: {sub: data.draw(VALUE)}}
    else:
        files["policy.d/50-fuzz.toml"] = {key: data.draw(VALUE)}
    return files


PM = make_plugin_manager()


def _run_check(path: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["check", *extra, str(path)])
    return code, out.getvalue(), err.getvalue()


def _assert_shown_safely(policy: Policy) -> None:
    """What a compiled policy names (ids, extensions, addresses, numbers) has no hidden character.

    These go into dial strings, Sieve scripts, mail headers and log lines.
    """
    names: list[str] = [*policy.users, *policy.groups, *policy.profiles, *policy.schedules]
    for u in policy.users.values():
        names += [u.email, *u.extensions, *u.numbers, *u.backups, u.mobile or ""]
    for g in policy.groups.values():
        names += [*g.members, *g.extensions, *g.numbers, g.mailbox or "", g.overflow or ""]
    for name in names:
        assert display_text(name) == name and " " not in name, repr(name)
    shown = [policy.organisation.name, *(u.name for u in policy.users.values()),
             *(g.name for g in policy.groups.values()), policy.mail.voice_folder,
             policy.mail.fax_folder]
    for text in shown:
        assert text.isprintable(), repr(text)  # display_text would hide a character of it


def check_document(files: dict[str, dict[str, Any]], multiline: bool, as_json: bool) -> str:
    """Load and check the files; "compiled" or "rejected", after asserting all agree."""
    with tempfile.TemporaryDirectory(prefix="mailcall-fuzz-") as tmp:
        root = Path(tmp)
        texts = {}
        for name, doc in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            texts[name] = tomli_w.dumps(doc, multiline_strings=multiline)
            (root / name).write_text(texts[name], encoding="utf-8")
        main_file = root / "policy.toml"
        try:
            policy = load_policy(main_file, pm=PM)
        except PolicyInvalid as exc:
            policy, problems = None, exc.problems
        code, out, err = _run_check(main_file, *(["--json"] if as_json else []))
        assert "Traceback" not in out + err
        if policy is not None:
            _assert_shown_safely(policy)
            assert code == 0, err
            summary = json.loads(out) if as_json else None
            assert summary["ok"] if as_json else out.startswith("policy OK")
            return "compiled"
        assert code == 2, (code, out, err)
        assert problems
        known = {str(root / name) for name in files}
        for p in problems:
            assert p.file in known and p.message, p
            lines = len(texts[str(Path(p.file).relative_to(root))].splitlines())
            assert p.line is None or 1 <= p.line <= lines, p
        if as_json:
            report = json.loads(out)
            assert report["ok"] is False and len(report["problems"]) == len(problems)
        else:
            assert err.startswith(f"policy rejected: {len(problems)} problem")
        return "rejected"


@FUZZ
@given(st.data())
def test_mutated_example_policy_compiles_or_reports_problems(data):
    doc = copy.deepcopy(EXAMPLE_DATA)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        _mutate(data, doc)
    files = _split(data, doc)
    event(check_document(files, multiline=data.draw(st.booleans()),
                         as_json=data.draw(st.booleans())))


def test_seed_is_a_valid_policy():
    """The fuzzer's starting point compiles, so that what a mutation breaks is the mutation's."""
    assert check_document({"policy.toml": copy.deepcopy(EXAMPLE_DATA)}, multiline=False,
                          as_json=False) == "compiled"


@pytest.mark.parametrize("doc", [
    {}, {"organisation": []}, {"organisation": {"name": "X", "domain": "x.example"}, "users": []},
    {"organisation": {"name": "X", "domain": "x.example"}, "absences": {"user": "x"}},
])
def test_degenerate_documents(doc):
    """Shapes far from the example, which mutating it rarely reaches."""
    assert check_document({"policy.toml": doc}, multiline=False, as_json=False) == "rejected"


def _shape(path: tuple) -> tuple:
    """`users.alice.extensions.0` and `users.bob.extensions.1` are the same place to the checks."""
    named = len(path) > 1 and path[0] in ("users", "groups", "profiles", "schedules")
    return tuple("#" if isinstance(part, int) else "*" if named and i == 1 else part
                 for i, part in enumerate(path))


def _single_mutations() -> list[tuple[str, tuple, Any]]:
    """Every kind of place of the seed with every TOML type, dropped, and every string edit."""
    out: list[tuple[str, tuple, Any]] = []
    shapes: set[tuple] = set()
    for path in _paths(EXAMPLE_DATA):
        here = _get(EXAMPLE_DATA, path)
        if _shape(path) in shapes:
            continue
        shapes.add(_shape(path))
        out += [(kind, path, value) for kind, value in EVERY_TYPE.items()]
        out.append(("dropped", path, None))
        if isinstance(here, str):
            out += [(name, path, edit(here)) for name, edit in STRING_EDITS.items()
                    if edit(here) != here]
        if isinstance(path[-1], str):
            keys = {edit(path[-1]) for edit in STRING_EDITS.values()} | {"0", "²", "x" * 70}
            out += [("renamed", path, key) for key in sorted(keys - {path[-1]})]
    return out


def test_every_place_with_every_type_and_string_edit():
    """The sweep the random fuzzer cannot promise: each place of the policy gets each change once.

    Through the real loader and compiler (TOML text, no plugins: `mailcall check` itself
    is driven by the fuzzer above); a crash fails with the place and the change.
    """
    crashes = []
    for kind, path, value in _single_mutations():
        doc = copy.deepcopy(EXAMPLE_DATA)
        if kind == "dropped":
            del _parent(doc, path)[path[-1]]
        elif kind == "renamed":
            parent = _parent(doc, path)
            parent[value] = parent.pop(path[-1])
        else:
            _parent(doc, path)[path[-1]] = value
        text = tomli_w.dumps(doc)
        try:
            policy = compile_text(text, name="policy.toml")
        except PolicyInvalid as exc:
            assert exc.problems and all(p.file == "policy.toml" for p in exc.problems)
            continue
        except Exception as exc:  # every crash is listed, then the test fails
            crashes.append(f"{'.'.join(map(str, path))} = {kind} {value!r}: "
                           f"{type(exc).__name__}: {exc}")
            continue
        try:
            _assert_shown_safely(policy)
        except AssertionError as exc:
            crashes.append(f"{'.'.join(map(str, path))} = {kind} {value!r}: compiled, "
                           f"and it names {str(exc).splitlines()[0]}")
    assert not crashes, "\n".join(crashes)
