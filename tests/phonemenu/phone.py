"""A scripted caller on a fake Asterisk, for the mailbox handler over the real AGI server.

It speaks FastAGI the way the recorded traces show (tests/agi/fake_asterisk.py
explains the shapes): an environment block, one reply per command, and a
hang-up as ``HANGUP`` before the next reply then 511 for what cannot run on a
dead channel. What a person does is a list of :class:`Press` rules, taken in
order: the first rule whose pattern matches a command that waits for the
caller (STREAM FILE, SAY NUMBER, WAIT FOR DIGIT, GET DATA, RECORD FILE) is
applied to it; other such commands play to their end (WAIT FOR DIGIT and GET
DATA time out). Once the rules are used up, the caller hangs up at the next
wait for a key.

Like Asterisk, it plays only what exists: a stock prompt must be in Debian's
prompt set of the channel's language (``SET VARIABLE CHANNEL(language)``), a
path must exist as ``.sln`` or ``.wav``; anything else answers ``result=-1
endpos=0`` (the ``voicemail`` trace's shape for a missing file) and is listed
in :attr:`Phone.missing`.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.agi.fake_asterisk import RECORDED
from tests.agi.support import MEDIA

SOUNDS = {"en": Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
          "fr": Path("/usr/share/asterisk/sounds/fr_CA_f_June")}
WAITING = ("STREAM FILE", "SAY NUMBER", "WAIT FOR DIGIT", "GET DATA", "RECORD FILE")
DEAD_OK = ("GET VARIABLE", "SET VARIABLE", "GET FULL VARIABLE", "EXEC", "VERBOSE")


@dataclass
class Press:
    """When a waiting command matches `pattern` (a regex searched in its line): press
    `key` (one digit: cuts it), type `digits` (GET DATA), or `hangup`."""

    pattern: str
    key: str | None = None
    digits: str | None = None
    hangup: bool = False


def stock_exists(name: str, language: str) -> bool:
    folder = SOUNDS.get(language, SOUNDS["en"])
    return (folder / f"{name}.wav").is_file()


@dataclass
class Phone:
    rules: list[Press]
    callerid: str = "201"
    calleridname: str = "Alice Martin"
    uniqueid: str = "1795887768.42"
    args: tuple[str, ...] = ()
    script: str = "mailbox"
    # filled in as the call goes
    commands: list[str] = field(default_factory=list)
    played: list[tuple[str, str]] = field(default_factory=list)
    """(prompt or path, channel language) of every STREAM FILE that played something."""
    missing: list[str] = field(default_factory=list)
    variables: dict[str, str] = field(default_factory=dict)
    recorded_to: list[str] = field(default_factory=list)
    language: str = "en"
    hungup: bool = False
    sent_at: list[tuple[float, str]] = field(default_factory=list)
    """(monotonic time, line) of each command received: latency measurements."""
    pressed_at: list[tuple[float, str]] = field(default_factory=list)

    def env_bytes(self) -> bytes:
        text = RECORDED.env_template
        subst = {"agi_network_script": self.script,
                 "agi_request": f"agi://127.0.0.1:4573/{self.script}",
                 "agi_callerid": self.callerid, "agi_calleridname": self.calleridname,
                 "agi_uniqueid": self.uniqueid}
        lines = []
        for line in text.split("\n")[:-2]:
            key = line.partition(":")[0]
            lines.append(f"{key}: {subst[key]}" if key in subst else line)
        lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(self.args, 1)]
        return ("\n".join(lines) + "\n\n").encode()

    def streams(self, pattern: str = "") -> list[str]:
        return [name for name, _ in self.played if re.search(pattern, name)]

    def _rule(self, line: str) -> Press | None:
        if self.rules and re.search(self.rules[0].pattern, line):
            return self.rules.pop(0)
        return None

    def reply(self, line: str) -> list[str]:
        words = shlex.split(line.rstrip("\n"), posix=True)
        head = " ".join(words[:3]).upper()
        if self.hungup:
            if head.startswith("SET VARIABLE"):  # res_agi allows it on a dead channel
                self.variables[words[2]] = words[3]
            if head.startswith(DEAD_OK):
                return ["200 result=1\n"]
            return ["511 Command Not Permitted on a dead channel or intercept routine\n"]
        if head.startswith("SET VARIABLE"):
            self.variables[words[2]] = words[3]
            if words[2] == "CHANNEL(language)":
                self.language = words[3]
            return ["200 result=1\n"]
        if head.startswith("ANSWER"):
            return ["200 result=0\n"]
        if head.startswith("GET VARIABLE DIALSTATUS"):
            return ["200 result=1 (ANSWER)\n"]
        if head.startswith("EXEC DIAL"):
            return ["200 result=0\n"]
        if not head.startswith(WAITING):
            return ["200 result=0\n"]
        rule = self._rule(line)
        if rule is None and not self.rules and head.startswith("WAIT FOR DIGIT"):
            rule = Press(".", hangup=True)
        if rule is not None and rule.hangup:
            self.hungup = True
            return ["200 result=-1\n", "HANGUP\n"]
        if rule is not None and rule.key:
            self.pressed_at.append((time.monotonic(), rule.key))
        if head.startswith("STREAM FILE"):
            name = words[2]
            exists = (Path(name + ".sln").is_file() or Path(name + ".wav").is_file()
                      if name.startswith("/") else stock_exists(name, self.language))
            if not exists:
                self.missing.append(f"{name} ({self.language})")
                return ["200 result=-1 endpos=0\n"]
            self.played.append((name, self.language))
            if rule is not None and rule.key:
                return [f"200 result={ord(rule.key)} endpos=4000\n"]
            return ["200 result=0 endpos=8000\n"]
        if head.startswith("SAY NUMBER"):
            self.played.append((f"digits:{words[2]}", self.language))
            return [f"200 result={ord(rule.key)}\n" if rule is not None and rule.key
                    else "200 result=0\n"]
        if head.startswith("WAIT FOR DIGIT"):
            return [f"200 result={ord(rule.key)}\n" if rule is not None and rule.key
                    else "200 result=0\n"]
        if head.startswith("GET DATA"):
            self.played.append((words[2], self.language))
            if not stock_exists(words[2], self.language):
                self.missing.append(f"{words[2]} ({self.language})")
            if rule is not None and rule.digits is not None:
                return [f"200 result={rule.digits}\n"]
            return ["200 result= (timeout)\n"]
        # RECORD FILE: copy the traced recording, end as the caller pressed #
        path = Path(words[2] + "." + words[3])
        self.recorded_to.append(str(path))
        path.write_bytes((MEDIA / "voicemail-dtmf-end.wav").read_bytes())
        return list(RECORDED.record["dtmf"])


async def run_phone(phone: Phone, host: str, port: int, timeout: float = 20.0) -> Phone:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(phone.env_bytes())
    try:
        while True:
            raw = await asyncio.wait_for(reader.readline(), timeout)
            if not raw:
                break
            line = raw.decode()
            phone.sent_at.append((time.monotonic(), line))
            phone.commands.append(line)
            out = phone.reply(line)
            if out and out[-1] == "HANGUP\n":  # the notice goes before the next reply
                writer.write("".join(out[:-1]).encode())
                await writer.drain()
                raw = await asyncio.wait_for(reader.readline(), timeout)
                if not raw:
                    break
                line = raw.decode()
                phone.commands.append(line)
                writer.write(("HANGUP\n" + "".join(phone.reply(line))).encode())
            else:
                writer.write("".join(out).encode())
            await writer.drain()
        if not phone.hungup:
            writer.write(b"HANGUP\n")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    return phone
