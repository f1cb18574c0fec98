"""A reader of Sieve's grammar (RFC 5228 §8): tokens and the command tree, nothing more.

mailcall reads scripts it did not write (a user's mail-client rules, :mod:`.client_vacation`)
to show what they do; it never evaluates or changes them. So this is only the grammar:
commands with their arguments, tests and blocks, in the order written, each with its line
for the admin. Anything that is not Sieve is refused with the line, as Dovecot would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field


class SieveSyntaxError(ValueError):
    """The script is not Sieve as RFC 5228 writes it (Dovecot would refuse it too)."""


# -- lexing (RFC 5228 §8.1) -------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "id", "tag", "num", "str", or the punctuation itself
    value: str
    line: int


_LEX = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<hash>\#[^\n]*)
  | (?P<bracket>/\*.*?\*/)
  | (?P<text>text:[ \t]*(?:\#[^\n]*)?\r?\n)
  | (?P<str>"(?:[^"\\]|\\.)*")
  | (?P<tag>:[A-Za-z_][A-Za-z0-9_]*)
  | (?P<num>[0-9]+[KMGkmg]?)
  | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[\[\](){},;])
""", re.VERBOSE | re.DOTALL)
_TEXT_END = re.compile(r"^\.\r?\n", re.MULTILINE)


def tokens(script: str) -> list[Token]:
    out: list[Token] = []
    pos, line = 0, 1
    while pos < len(script):
        m = _LEX.match(script, pos)
        if m is None:
            raise SieveSyntaxError(f"line {line}: unexpected {script[pos:pos + 10]!r}")
        kind = m.lastgroup
        if kind == "text":
            end = _TEXT_END.search(script, m.end())
            if end is None:
                raise SieveSyntaxError(f"line {line}: text: without its closing '.' line")
            body = script[m.end():end.start()]
            body = "".join(row[1:] if row.startswith("..") else row
                           for row in body.splitlines(keepends=True))
            out.append(Token("str", body, line))
            pos = end.end()
        else:
            text = m.group()
            if kind == "str":
                out.append(Token("str", re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL),
                                 line))
            elif kind == "punct":
                out.append(Token(text, text, line))
            elif kind in ("tag", "num", "id"):
                out.append(Token(kind, text.lower() if kind != "num" else text, line))
            pos = m.end()
        line += script.count("\n", m.start(), pos)
    return out


# -- parsing (RFC 5228 §8.2) ------------------------------------------------------------

Arg = str | list[str] | Token  # a string, a string list, or a tag / number token


@dataclass
class Test:
    name: str
    args: list[Arg] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)


@dataclass
class Command:
    name: str
    line: int
    args: list[Arg] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)
    block: list[Command] | None = None


class _Parser:
    def __init__(self, toks: list[Token]) -> None:
        self.toks, self.i = toks, 0

    def peek(self) -> Token | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, kind: str | None = None) -> Token:
        tok = self.peek()
        if tok is None:
            last = self.toks[-1] if self.toks else None
            raise SieveSyntaxError(
                f"line {last.line if last else 1}: the script ends in the middle of a command"
                + (f" (after {last.value!r}; a ';' missing?)" if last else ""))
        if kind is not None and tok.kind != kind:
            raise SieveSyntaxError(f"line {tok.line}: expected {kind!r}, found {tok.value!r}")
        self.i += 1
        return tok

    def commands(self, until: str | None = None) -> list[Command]:
        out = []
        while (tok := self.peek()) is not None and tok.kind != until:
            out.append(self.command())
        if until is not None:
            self.take(until)
        return out

    def command(self) -> Command:
        name = self.take("id")
        cmd = Command(name.value, name.line)
        cmd.args, cmd.tests = self.arguments()
        tok = self.take()
        if tok.kind == "{":
            cmd.block = self.commands("}")
        elif tok.kind != ";":
            raise SieveSyntaxError(f"line {tok.line}: expected ';' or '{{' after "
                                   f"{name.value!r}, found {tok.value!r}")
        return cmd

    def arguments(self) -> tuple[list[Arg], list[Test]]:
        args: list[Arg] = []
        tests: list[Test] = []
        while (tok := self.peek()) is not None:
            if tok.kind == "str":
                args.append(self.take().value)
            elif tok.kind in ("tag", "num"):
                args.append(self.take())
            elif tok.kind == "[":
                args.append(self.string_list())
            else:
                break
        tok = self.peek()
        if tok is not None and tok.kind == "(":
            self.take()
            tests.append(self.test())
            while self.peek() is not None and self.peek().kind == ",":  # type: ignore[union-attr]
                self.take()
                tests.append(self.test())
            self.take(")")
        elif tok is not None and tok.kind == "id":
            tests.append(self.test())
        return args, tests

    def test(self) -> Test:
        name = self.take("id")
        test = Test(name.value)
        test.args, test.tests = self.arguments()
        return test

    def string_list(self) -> list[str]:
        self.take("[")
        out = [self.take("str").value]
        while self.peek() is not None and self.peek().kind == ",":  # type: ignore[union-attr]
            self.take()
            out.append(self.take("str").value)
        self.take("]")
        return out


def parse(script: str) -> list[Command]:
    return _Parser(tokens(script)).commands()
