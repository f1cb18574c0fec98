"""AGI command lines: the only way bytes addressed to Asterisk are produced.

Asterisk splits a command line on blanks; ``"`` toggles quoting and ``\\``
escapes the next character (res_agi.c, ``parse_args``). There is no way to
escape a newline: a CR or LF in a value would end the command and start a new
one, so the serializer refuses CR, LF and NUL anywhere, whatever the caller
asked for. Asterisk also has room for 128 words (``MAX_ARGS``), and mailcall
sends at most 127 (``MAX_WORDS``, below), and reads
commands into a fixed buffer (8192 bytes, 2048 before Asterisk 20.16, 21.11 and
22.6): a longer line is cut and its tail read as a *second* command, so the
length is checked against a limit that defaults to the older, smaller buffer.

Words are either *bare* (``str``: command keywords, variable names, numbers —
they must not need quoting) or :class:`Quoted` (any value: always written
between quotes with ``\\`` and ``"`` escaped).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from mailcall.core.sansio import LocalProtocolError

MAX_ARGS = 128
"""res_agi.c MAX_ARGS: the size of Asterisk's word array, its end marker included."""
MAX_WORDS = MAX_ARGS - 1
"""The most words mailcall sends. res_agi's ``parse_args`` stops bare words at
``MAX_ARGS - 1`` but a word opening with a quote skips that check, and the
closing NULL then lands one past the array: 128 quoted words would overflow
Asterisk's stack by one pointer. 127 leaves room for the NULL either way."""
LINE_LIMIT_OLD = 2048
LINE_LIMIT_NEW = 8192
DEFAULT_LINE_LIMIT = LINE_LIMIT_OLD
"""Safe for every Asterisk 18-23; pass LINE_LIMIT_NEW only for 20.16+/21.11+/22.6+."""

_BARE_BAD = re.compile(r"[\x00-\x20\"\\\x7f]")


class CommandError(LocalProtocolError, ValueError):
    """A command that cannot be written safely; nothing was sent. Our own misuse of the
    FastAGI machine (a LocalProtocolError); still a ValueError for its older callers."""


class Quoted(NamedTuple):
    """A value written between double quotes, escaped.

    Immutable like a frozen dataclass, but a tuple: several are built for every
    call, and a tuple is built and hashed in C (the encoded-command cache hashes
    every command sent).
    """

    value: str


Word = str | Quoted


class Command(NamedTuple):
    """One AGI command: its words in order (``("GET", "VARIABLE", "X")``)."""

    words: tuple[Word, ...]

    @property
    def name(self) -> str:
        """The keywords (upper-case bare words at the start), for logs."""
        out = []
        for word in self.words:
            if type(word) is not str or not word.isalpha() or not word.isupper():
                break
            out.append(word)
        return " ".join(out)


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode(command: Command, line_limit: int = DEFAULT_LINE_LIMIT) -> bytes:
    """The exact bytes for `command`, newline included; raises CommandError.

    Commands are immutable, so the bytes of one already checked are reused
    (a session repeats the same few: ``GET VARIABLE DIALSTATUS``...); the
    table is bounded, as commands also carry per-call values, and a refused
    command is never remembered.
    """
    for word in command.words:
        if type(word) is not str and type(word) is not Quoted:
            # Not cached: a plain tuple would equal a cached Quoted; _encode refuses it.
            return _encode(command, line_limit)
    return _encoded(command, line_limit)


def _encode(command: Command, line_limit: int) -> bytes:
    words = command.words
    if not words:
        raise CommandError("empty AGI command")
    if len(words) > MAX_WORDS:
        raise CommandError(f"AGI command has {len(words)} words; at most {MAX_WORDS} are sent "
                           f"(Asterisk's MAX_ARGS is {MAX_ARGS}, its end marker included)")
    parts: list[str] = []
    bare: list[str] = []
    for word in words:
        if isinstance(word, Quoted):
            parts.append(quote(word.value))
        elif isinstance(word, str):
            bare.append(word)
            parts.append(word)
        else:
            raise CommandError(f"AGI word {word!r} is neither str nor Quoted")
    line = " ".join(parts)
    # One check on the whole line: no value, quoted or not, may end the command.
    if "\n" in line or "\r" in line or "\x00" in line:
        raise CommandError("a CR, LF or NUL in an AGI argument would inject a command")
    if bare and _BARE_BAD.search("".join(bare)):
        word = next(w for w in bare if _BARE_BAD.search(w))
        raise CommandError(f"bare AGI word {word!r} needs quoting; pass it as Quoted")
    try:
        data = (line + "\n").encode("utf-8")
    except UnicodeEncodeError as exc:
        raise CommandError(f"an AGI argument is not valid text: {exc.reason}") from None
    # Asterisk's buffer holds line_limit bytes including its terminating NUL.
    if len(data) >= line_limit:
        raise CommandError(
            f"AGI command is {len(data)} bytes; this Asterisk reads at most {line_limit - 1}"
        )
    return data


_encoded = functools.lru_cache(maxsize=4096)(_encode)


# Builders for the commands mailcall uses: keywords bare, values quoted.


def _int(value: int) -> str:
    return str(int(value))


def answer() -> Command:
    return Command(("ANSWER",))


def hangup() -> Command:
    return Command(("HANGUP",))


def get_variable(name: str) -> Command:
    return Command(("GET", "VARIABLE", name))


def get_full_variable(expression: str) -> Command:
    return Command(("GET", "FULL", "VARIABLE", Quoted(expression)))


def set_variable(name: str, value: str) -> Command:
    return Command(("SET", "VARIABLE", name, Quoted(value)))


def verbose(message: str, level: int = 1) -> Command:
    return Command(("VERBOSE", Quoted(message), _int(level)))


def exec_app(application: str, options: str) -> Command:
    return Command(("EXEC", application, Quoted(options)))


def stream_file(name: str, escape_digits: str = "") -> Command:
    return Command(("STREAM", "FILE", name, Quoted(escape_digits)))


def get_data(name: str, timeout_ms: int, max_digits: int) -> Command:
    return Command(("GET", "DATA", name, _int(timeout_ms), _int(max_digits)))


def record_file(
    path: str,
    fmt: str,
    escape_digits: str,
    timeout_ms: int,
    *,
    beep: bool = True,
    silence_s: int | None = None,
) -> Command:
    words: list[Word] = ["RECORD", "FILE", path, fmt, Quoted(escape_digits), _int(timeout_ms)]
    if beep:
        words.append("BEEP")
    if silence_s is not None:
        words.append(f"s={int(silence_s)}")
    return Command(tuple(words))


def wait_for_digit(timeout_ms: int) -> Command:
    return Command(("WAIT", "FOR", "DIGIT", _int(timeout_ms)))
