"""Reading policy files: the main TOML file and `policy.d/*.toml` merged in order.

Merging never lets two files silently disagree: a key set in two files is an
error naming both, because a drop-in that quietly overrides the main policy is
exactly the kind of surprise that disables a feature without anyone noticing.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mailcall.core.errors import Problem

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


@dataclass
class RawPolicy:
    """The merged tables plus where each key came from, for error messages."""

    data: dict[str, Any] = field(default_factory=dict)
    origin: dict[tuple[str, ...], str] = field(default_factory=dict)
    texts: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def file_of(self, path: tuple[str, ...]) -> str:
        for n in range(len(path), 0, -1):
            found = self.origin.get(path[:n])
            if found:
                return found
        return self.files[0] if self.files else "<policy>"

    def line_of(self, path: tuple[str, ...]) -> int | None:
        """Best-effort line of `path` in its file (tomllib does not report key positions)."""
        text = self.texts.get(self.file_of(path))
        if text is None or not path:
            return None
        return locate(text, path)


def locate(text: str, path: tuple[str, ...]) -> int | None:
    lines = text.splitlines()
    quoted = [re.escape(p) for p in path]

    def header(parts: list[str]) -> re.Pattern[str]:
        dotted = r"\s*\.\s*".join(rf"(?:{p}|\"{p}\")" for p in parts)
        return re.compile(rf"^\s*\[\[?\s*{dotted}\s*\]\]?\s*(#.*)?$")

    if len(path) >= 2 and path[1].isascii() and path[1].isdigit():
        # [[absences]]: the n-th header of the array, then the key below it.
        array = re.compile(rf"^\s*\[\[\s*{quoted[0]}\s*\]\]")
        starts = [i for i, line in enumerate(lines) if array.match(line)]
        n = int(path[1])
        if n < len(starts):
            if len(path) == 2:
                return starts[n] + 1
            key = re.compile(rf"^\s*{quoted[2]}\s*=")
            for j in range(starts[n] + 1, len(lines)):
                if lines[j].lstrip().startswith("["):
                    break
                if key.match(lines[j]):
                    return j + 1
            return starts[n] + 1
    for cut in range(len(path), 0, -1):
        pat = header(quoted[:cut])
        for i, line in enumerate(lines):
            if not pat.match(line):
                continue
            if cut == len(path):
                return i + 1
            key = re.compile(rf"^\s*(?:{quoted[cut]}|\"{quoted[cut]}\")\s*[=.]")
            for j in range(i + 1, len(lines)):
                if lines[j].lstrip().startswith("["):
                    break
                if key.match(lines[j]):
                    return j + 1
            return i + 1
    key = re.compile(rf"^\s*(?:{quoted[0]}|\"{quoted[0]}\")\s*[=.]")
    for i, line in enumerate(lines):
        if key.match(line):
            return i + 1
    return None


_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def key_path(path: tuple[str, ...]) -> str:
    """A key path as the admin writes it in TOML: `users.alice`, `users."a.b"`, `users."x\\n"`.

    A part that is not a bare key is quoted, so that a dot or a line break inside a key
    cannot make the report name another key or break its line.
    """
    return ".".join(part if _BARE_KEY.match(part) else f'"{visible(part, quotes=True)}"'
                    for part in path)


def visible(text: str, *, quotes: bool = False) -> str:
    """`text` with its hidden characters written as escapes (\\n, \\u202e), for problem reports.

    Not `display_text`: that one removes what it hides, and a report must show the
    admin the invisible character to delete. The hidden set is the same (str.isprintable).
    """
    if text.isprintable() and not (quotes and ('"' in text or "\\" in text)):
        return text
    out = []
    for c in text:
        if quotes and c in '"\\':
            out.append("\\" + c)
        elif c.isprintable():
            out.append(c)
        elif c in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[c])
        else:
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
    return "".join(out)


def policy_files(path: Path) -> list[Path]:
    """The main file, then `policy.d/*.toml` beside it in name order."""
    dropins = path.parent / "policy.d"
    extra = sorted(dropins.glob("*.toml")) if dropins.is_dir() else []
    return [path, *extra]


def read_policy(paths: list[Path], problems: list[Problem]) -> RawPolicy:
    raw = RawPolicy()
    for path in paths:
        name = str(path)
        raw.files.append(name)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(Problem(name, "", "file not found; pass --policy PATH or run "
                                    "'mailcall init PATH' to write an example"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(name, "", f"cannot read: {exc}"))
            continue
        raw.texts[name] = text
        parsed = parse_text(text, name, problems)
        if parsed is not None:
            merge(raw, parsed, name, (), problems)
    return raw


def parse_text(text: str, name: str, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.search(msg)
        line = int(m.group(1)) if m else None
        problems.append(Problem(name, "", f"TOML syntax error: {_TOML_POS.sub('', msg).strip()}"
                                f"{f' (column {m.group(2)})' if m else ''}", line))
        return None
    except RecursionError:
        problems.append(Problem(name, "", "values nested too deeply for a policy (tables or "
                                "arrays inside each other hundreds of levels deep): write them "
                                "flat, as the examples in docs/policy.md do", None))
        return None


def merge(raw: RawPolicy, new: dict[str, Any], name: str, prefix: tuple[str, ...],
          problems: list[Problem]) -> None:
    target: Any = raw.data
    for part in prefix:
        target = target[part]
    for key, value in new.items():
        path = (*prefix, key)
        if key not in target:
            target[key] = value
            raw.origin[path] = name
            _mark(raw, value, path, name)
        elif isinstance(target[key], dict) and isinstance(value, dict):
            merge(raw, value, name, path, problems)
        elif isinstance(target[key], list) and isinstance(value, list) and key == "absences":
            target[key].extend(value)
        else:
            first = raw.file_of(path)
            problems.append(Problem(name, key_path(path),
                                    f"already set in {first}; set it in one file only",
                                    raw.line_of(path) if first == name
                                    else locate_in(name, raw, path)))


def locate_in(name: str, raw: RawPolicy, path: tuple[str, ...]) -> int | None:
    text = raw.texts.get(name)
    return locate(text, path) if text else None


def _mark(raw: RawPolicy, value: Any, path: tuple[str, ...], name: str) -> None:
    # Two levels ("users.alice") say which file a key is in: deeper keys are in the same
    # file as their entity, and marking every leaf of a 100,000-user policy costs seconds.
    if isinstance(value, dict) and len(path) < 2:
        for k, v in value.items():
            raw.origin[(*path, k)] = name
            _mark(raw, v, (*path, k), name)
