"""A scripted caller on the tests' fake Asterisk, for the mailbox handler over the real AGI server.

The FastAGI conversation itself (environment block, one reply per command, a
hang-up as the traced ``HANGUP`` notice before the next reply, then 511 for
what cannot run on a dead channel) is tests/agi/fake_asterisk.py's
:func:`run_call`; :class:`Phone` only says what a person does, through
:meth:`Call.answer`. What a person does is a list of :class:`Press` rules,
taken in order: the first rule whose pattern matches a command that waits for
the caller (STREAM FILE, SAY NUMBER, WAIT FOR DIGIT, GET DATA, RECORD FILE) is
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
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.agi.fake_asterisk import RECORDED, Call, run_call
from tests.agi.support import MEDIA

SOUNDS = {"en": Path("/usr/share/asterisk/sounds/en_US_f_Allison"),
          "fr": Path("/usr/share/asterisk/sounds/fr_CA_f_June")}
WAITING = ("STREAM FILE", "SAY NUMBER", "WAIT FOR DIGIT", "GET DATA", "RECORD FILE")


@dataclass
class Press:
    """When a waiting command matches `pattern` (a regex searched in its line): press
    `key` (one digit: cuts it), type `digits` (GET DATA), or `hangup`."""

    pattern: str
    key: str | None = None
    digits: str | None = None
    hangup: bool = False
    after: float = 0.0
    """Seconds the caller listens before pressing `key` (a person, not a loop): the reply
    comes that much later, and the press is timed when it is sent."""
    cut: bool = False
    """With `hangup` on a STREAM FILE: the playback is cut by the hang-up, as Asterisk
    answers it (``result=-1 endpos=6080``, the ``dtmf`` trace), so the server knows at
    once; without it the reply is a bare ``result=-1`` and it learns with the next one."""


def stock_exists(name: str, language: str) -> bool:
    folder = SOUNDS.get(language, SOUNDS["en"])
    return (folder / f"{name}.wav").is_file()


class Phone(Call):
    """One caller: `rules` in order; what it heard is in :attr:`played`, the commands in
    :attr:`commands`, the variables the server set in :attr:`variables_set`."""

    def __init__(self, rules: Sequence[Press], *, callerid: str = "201",
                 calleridname: str = "Alice Martin", uniqueid: str = "1795887768.42",
                 args: tuple[str, ...] = (), script: str = "mailbox") -> None:
        super().__init__(script=script, args=tuple(args), callerid=callerid,
                         calleridname=calleridname, uniqueid=uniqueid)
        self.rules = list(rules)
        self.played: list[tuple[str, str]] = []
        """(prompt or path, channel language) of every STREAM FILE that played something."""
        self.missing: list[str] = []
        self.language = "en"
        self.sent_at: list[tuple[float, str]] = []
        """(monotonic time, line) of each command received: latency measurements."""
        self.pressed_at: list[tuple[float, str]] = []

    def streams(self, pattern: str = "") -> list[str]:
        return [name for name, _ in self.played if re.search(pattern, name)]

    def _rule(self, line: str) -> Press | None:
        if self.rules and re.search(self.rules[0].pattern, line):
            return self.rules.pop(0)
        return None

    def answer(self, line: str, words: list[str]) -> list[str] | Awaitable[list[str]]:
        self.sent_at.append((time.monotonic(), line))
        after = self.rules[0].after if self.rules and re.search(self.rules[0].pattern, line) \
            else 0.0
        reply = self._reply(line, words)
        if after and self.pressed_at:
            return self._later(after, reply)
        return reply

    async def _later(self, after: float, reply: list[str]) -> list[str]:
        await asyncio.sleep(after)
        self.pressed_at[-1] = (time.monotonic(), self.pressed_at[-1][1])
        return reply

    def _reply(self, line: str, words: list[str]) -> list[str]:
        head = " ".join(words[:3]).upper()
        if head.startswith("SET VARIABLE"):  # res_agi allows it on a dead channel too
            self.variables_set[words[2]] = words[3]
            if words[2] == "CHANNEL(language)" and not self.hungup:
                self.language = words[3]
            return ["200 result=1\n"]
        if self.hungup:  # only what a dead channel still runs reaches here (fake_asterisk)
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
            # the command running answers -1; the HANGUP notice comes before the next reply
            self.hangup_pending = True
            if rule.cut and head.startswith("STREAM FILE"):
                return list(RECORDED.stream_hangup)
            return ["200 result=-1\n"]
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
    await run_call(phone, host, port, timeout)
    return phone
