"""Test helpers: the recorded traces, and a fake Asterisk that replays them over TCP."""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path

from mailcall.agi.commands import Command, Quoted

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("MAILCALL_SHARED", REPO.parent / "shared"))
TRACES = SHARED / "asterisk" / "traces"
MEDIA = SHARED / "asterisk" / "media"


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


class ReplayMismatch(AssertionError):
    pass


async def replay(trace: Trace, host: str, port: int, *, chunk: int | None = None,
                 timeout: float = 5.0) -> list[str]:
    """Play Asterisk's side of `trace` against a server, byte for byte.

    Every server line is read and compared with the recording; every Asterisk
    line is written as recorded. Returns the server lines received. After the
    last recorded line, waits for the server to close (as Asterisk would, it
    then writes one more HANGUP if the trace did not end with one).
    """
    reader, writer = await asyncio.open_connection(host, port)
    received: list[str] = []
    try:
        for d, line in trace.lines:
            if d == "asterisk":
                data = line.encode()
                if chunk:
                    for k in range(0, len(data), chunk):
                        writer.write(data[k:k + chunk])
                        await writer.drain()
                else:
                    writer.write(data)
                await writer.drain()
            else:
                got = await asyncio.wait_for(reader.readline(), timeout)
                received.append(got.decode())
                if got != line.encode():
                    raise ReplayMismatch(f"{trace.name}: expected {line!r}, server sent {got!r}")
        if trace.lines[-1] != ("asterisk", "HANGUP\n"):
            writer.write(b"HANGUP\n")
        try:
            rest = await asyncio.wait_for(reader.read(), timeout)
        except ConnectionResetError:
            # The server closed with our last HANGUP still unread in its socket: the
            # kernel then answers with a reset instead of a FIN. Nothing more came.
            rest = b""
        if rest:
            raise ReplayMismatch(f"{trace.name}: server sent more than recorded: {rest!r}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return received
