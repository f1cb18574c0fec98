"""Asterisk's answers to AGI commands, parsed into values handlers can trust.

Reply shapes come from res_agi.c's ``ast_agi_send`` calls and the recorded traces
in ``shared/asterisk/traces``: ``200 result=N``, ``200 result=N (data)``,
``200 result=N (data) endpos=M``, ``100 result=0 Trying...`` (GOSUB, before its
200), ``510 Invalid or unknown command``, ``511 Command Not Permitted on a dead
channel or intercept routine``, and the usage error ``520`` in one line or as
``520-...`` lines closed by ``520 End of proper usage.``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

_PARAM = re.compile(r"[A-Za-z_]+=\S*").fullmatch
_WORD = re.compile(r"\S*").fullmatch


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete answer to one command."""

    code: int
    """200 success, 510 unknown command, 511 dead channel, 520 usage error, ..."""
    result: str = ""
    """The raw ``result=`` value ("" when absent)."""
    data: str | None = None
    """The text between parentheses, if any."""
    params: tuple[tuple[str, str], ...] = ()
    """``key=value`` pairs after the data (``endpos``)."""
    text: str = ""
    """The whole reply as received (all lines of a multi-line 520, joined by LF)."""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def result_int(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None

    def param(self, name: str) -> str | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


def parse_reply_line(code: int, line: str) -> Reply:
    """Parse a single reply line whose 3-digit `code` is already known.

    Replies are immutable and a server sees the same few lines over and over
    (``200 result=1 (NOANSWER)``...): short lines are parsed once and kept, in
    a bounded table, since their data can be anything Asterisk returns.
    """
    known = _COMMON.get(line)
    if known is not None:
        return known
    if len(line) <= _REMEMBERED_LINE:
        return _parsed(code, line)
    return _parse(code, line)


_REMEMBERED_LINE = 64


def _parse(code: int, line: str) -> Reply:
    rest = line[4:]
    if code in (100, 200) and rest.startswith("result="):
        parsed = _result_data_params(rest[7:])
        if parsed is not None:
            result, data, params = parsed
            return Reply(code, result, data, params, line)
        # "200 result=-1 Gosub failed" and the like: keep the words as data.
        result, _, more = rest[7:].partition(" ")
        return Reply(code=code, text=line, result=result, data=more or None)
    return Reply(code=code, text=line)


def _result_data_params(
    text: str,
) -> tuple[str, str | None, tuple[tuple[str, str], ...]] | None:
    """``N [(data)] [k=v ...]`` split into its parts, or None if it is not that shape.

    The data may itself hold ``)`` and ``k=v``: it runs to the *last* ``)``
    that only ``k=v`` words follow. Found in one pass from the right, so a
    hostile line full of ``) a=b`` costs linear time (a backtracking regex
    spent half a second on 15 KB of it).
    """
    result, sep, more = text.partition(" ")
    if not _WORD(result):
        return None
    if not sep:
        return result, None, ()
    words = more.split(" ")
    first_param = len(words)
    while first_param > 0 and _PARAM(words[first_param - 1]):
        first_param -= 1
    if more.startswith("("):
        # Where each candidate params tail starts (after its space), latest first.
        end = len(more) + 1
        for i in range(len(words), first_param - 1, -1):
            if i < len(words):
                end -= len(words[i]) + 1
            if end >= 2 and more[end - 2] == ")":
                params = tuple(tuple(w.split("=", 1)) for w in words[i:])
                return result, more[1:end - 2], params  # type: ignore[return-value]
    if first_param == 0:
        return result, None, tuple(tuple(w.split("=", 1)) for w in words)  # type: ignore[misc]
    return None


_parsed = functools.lru_cache(maxsize=1024)(_parse)

_COMMON = MappingProxyType({
    line: Reply(200, line[11:], None, (), line)
    for line in ("200 result=0", "200 result=1", "200 result=-1")
})
"""The most frequent replies, parsed once: Reply is immutable, so they can be shared."""


# ---------------------------------------------------------------- typed results

RecordOutcome = Literal["dtmf", "hangup", "timeout", "error"]


@dataclass(frozen=True, slots=True)
class RecordResult:
    """What RECORD FILE did: how it ended and how many samples it wrote."""

    outcome: RecordOutcome
    digit: str | None
    """The escape digit that ended the recording (outcome "dtmf")."""
    endpos: int
    """Samples written (8 kHz for narrow-band formats)."""
    detail: str = ""
    """Asterisk's word: dtmf, hangup, timeout, writefile, waitfor, randomerror."""


def record_result(reply: Reply) -> RecordResult:
    endpos = _int_or(reply.param("endpos"), 0)
    word = reply.data or ""
    if word == "dtmf":
        code = reply.result_int
        digit = chr(code) if code is not None and 0 < code < 128 else None
        return RecordResult("dtmf", digit, endpos, word)
    if word == "hangup":
        return RecordResult("hangup", None, endpos, word)
    if word == "timeout":
        # Maximum length reached or silence detected: both end with "(timeout)".
        return RecordResult("timeout", None, endpos, word)
    return RecordResult("error", None, endpos, word or reply.text)


@dataclass(frozen=True, slots=True)
class StreamResult:
    """STREAM FILE: played to the end, interrupted by a digit, or failed."""

    played: bool
    """False when the file was missing or the channel hung up (``result=-1``)."""
    digit: str | None
    endpos: int

    @property
    def cut(self) -> bool:
        """Started, then stopped by the channel going away (``result=-1``, ``endpos`` > 0)."""
        return not self.played and self.endpos > 0


def stream_result(reply: Reply) -> StreamResult:
    code = reply.result_int
    endpos = _int_or(reply.param("endpos"), 0)
    if code is None or code < 0:
        return StreamResult(False, None, endpos)
    return StreamResult(True, chr(code) if 0 < code < 128 else None, endpos)


@dataclass(frozen=True, slots=True)
class DataResult:
    """GET DATA: the digits typed, and whether the caller stopped typing."""

    digits: str
    timeout: bool
    hangup: bool


def data_result(reply: Reply) -> DataResult:
    if reply.result == "-1":
        return DataResult("", False, True)
    digits = "".join(ch for ch in reply.result if ch.isdigit() or ch in "*#")
    return DataResult(digits, reply.data == "timeout", False)


DIAL_STATUSES = frozenset(
    {"ANSWER", "BUSY", "NOANSWER", "CANCEL", "CONGESTION", "CHANUNAVAIL", "DONTCALL", "TORTURE",
     "INVALIDARGS"}
)


DIAL_CONDITIONS: Mapping[str, str] = MappingProxyType({
    "BUSY": "busy", "NOANSWER": "no-answer", "CHANUNAVAIL": "unavailable",
    "CONGESTION": "unavailable", "INVALIDARGS": "unavailable",
})
"""What a DIALSTATUS says of the callee, in the policy's words: the ``Ring.after``
conditions of the call plan and the ``reason`` a voicemail mail gives. INVALIDARGS
is a dial string Dial refused: for the caller the phone could not be reached. The
others (ANSWER, CANCEL, DONTCALL, TORTURE) end the plan and have none."""


def dial_status(value: str | None) -> str:
    """DIALSTATUS normalised to one of DIAL_STATUSES, or "UNKNOWN"."""
    value = (value or "").strip().upper()
    return value if value in DIAL_STATUSES else "UNKNOWN"


def _int_or(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default
