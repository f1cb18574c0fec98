"""Test helpers: the recorded traces, read and tokenized (tests/agi/fake_asterisk.py plays them)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mailcall.agi.commands import Command, Quoted
from tests.support import MEDIA, REPO, TRACES  # noqa: F401 - imported by this folder's tests


@dataclass(frozen=True)
class Trace:
    name: str
    header: dict
    lines: tuple[tuple[str, str], ...]
    """(dir, line) pairs in wire order."""

    @property
    def env_bytes(self) -> bytes:
        out = []
        for d, line in self.lines:
            out.append(line)
            if d == "asterisk" and line == "\n":
                break
        return "".join(out).encode()

    @property
    def after_env(self) -> tuple[tuple[str, str], ...]:
        for i, (d, line) in enumerate(self.lines):
            if d == "asterisk" and line == "\n":
                return self.lines[i + 1:]
        raise AssertionError("trace has no environment terminator")

    @property
    def server_lines(self) -> list[str]:
        return [line for d, line in self.lines if d == "server"]


def load_trace(path: Path) -> Trace:
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    header, body = rows[0], rows[1:]
    return Trace(path.stem, header, tuple((r["dir"], r["line"]) for r in body))


def all_traces() -> list[Trace]:
    paths = sorted(TRACES.glob("*.jsonl"))
    assert paths, f"no traces found in {TRACES}"
    return [load_trace(p) for p in paths]


def tokenize(line: str) -> Command:
    """Split a recorded server line the way Asterisk does, keeping quoting as Quoted."""
    text = line.rstrip("\n")
    words: list = []
    i = 0
    # A trailing blank produces an empty bare word so the line re-encodes identically.
    while i <= len(text):
        if i == len(text):
            if text.endswith(" "):
                words.append("")
            break
        if text[i] == '"':
            j = i + 1
            value = []
            while text[j] != '"':
                if text[j] == "\\":
                    j += 1
                value.append(text[j])
                j += 1
            words.append(Quoted("".join(value)))
            i = j + 1
        else:
            j = text.find(" ", i)
            j = len(text) if j < 0 else j
            words.append(text[i:j])
            i = j
        if i < len(text) and text[i] == " ":
            i += 1
    return Command(tuple(words))
