"""The contrib dialplan run in a model of Asterisk's dialplan engine, on hostile numbers.

Asterisk cannot run here, and a grep of the .conf cannot tell whether a check
really stops ``+3,5,U(sub)`` or ``2&PJSIP/x@trunk``. So this module runs the
shipped ``extensions-mailcall.conf`` in a small interpreter of the part of
the dialplan it uses, written from Asterisk's sources:

* variable substitution: ``${VAR}``, ``${VAR:offset:length}``,
  ``${FUNC(args)}`` (the function's arguments run to the *last* ``)``,
  ``func_args`` in pbx_functions.c) and ``$[...]``, each substituted once,
  inner text first, never re-scanned (pbx_variables.c);
* argument splitting, ``__ast_app_separate_args`` in main/app.c, ported line
  for line: parentheses, brackets and quotes protect the delimiter, ``\\``
  escapes, the last slot takes the remainder, a trailing delimiter adds an
  empty argument;
* an application's data substituted into a buffer of ``EXT_DATA_SIZE``
  (8192) bytes, NUL included, the rest cut off (pbx.c,
  ``pbx_extension_helper``);
* ``FILTER``, ``LEN``, ``REPLACE`` (without a replacement character: the
  listed characters are removed) and ``FIELDQTY`` (funcs/func_strings.c; both
  take a variable *name*), ``CALLERID(num)``, ``Gosub``/``Return`` with
  ``ARGn``/``ARGC`` (apps/app_stack.c ``gosub_exec``: label up to the first
  ``(``, arguments up to the last ``)`` or to the end when there is none,
  split RAW; a nested Gosub masks every ``ARGn`` of the frame below it, up to
  that frame's count, and ``Return`` brings them back; a ``Goto`` leaves the
  frames as they are), ``Goto``, ``GotoIf``, ``ExecIf``, ``Set``/``MSet``,
  ``Hangup``, and ``AGI``/``Dial``/``ReceiveFAX`` recorded instead of run;
* ``$[...]`` expressions with ``|``, ``&``, comparisons and parentheses, as
  ast_expr2.y evaluates them (``a | b`` is ``a`` unless it is empty or zero,
  then ``b``). A syntax error makes the test fail: it would mean caller text
  reached an expression.

The entry lines are the ones docs/asterisk.md tells sysadmins to write, taken
from the doc itself, plus one per extension of ``mailcall-voicemail`` (the
greeting kinds). The property checked, for every context and every number
hypothesis can think of: the call is either refused (hung up with cause 21,
nothing dialled, mailcall never asked) or goes on with exactly the number
that was dialled, which is then one optional leading ``+`` and digits, at
most 79 characters. All three go through the one check,
``[mailcall-check-number]``, called with a nested Gosub.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mailcall.agi.handlers import fax as fax_handler

from .support import REPO

SNIPPET = REPO / "contrib" / "asterisk" / "extensions-mailcall.conf"
DOC = REPO / "docs" / "asterisk.md"
NUMBER = re.compile(r"\+?[0-9]+")
MAX_NUMBER = 79  # AST_MAX_EXTENSION (80) without its NUL
EXT_DATA_SIZE = 8192  # pbx.c: an application's data after substitution, NUL included
KINDS = {"s": "unavailable", "unavailable": "unavailable", "busy": "busy",
         "absence": "absence"}
CHECK = "mailcall-check-number"
SPOOL = "/var/spool/mailcall"
UNIQUEID = "1795887768.3"
URL = "agi://127.0.0.1:4573"

# ------------------------------------------------------------------ parsing


@dataclass(frozen=True)
class Priority:
    label: str | None
    app: str
    data: str


def parse_dialplan(text: str) -> dict[str, dict[str, list[Priority]]]:
    """extensions.conf contexts -> extensions -> priorities (1-based: index + 1)."""
    assert "\\;" not in text, "escaped semicolons are not modelled"
    contexts: dict[str, dict[str, list[Priority]]] = {}
    current: dict[str, list[Priority]] | None = None
    exten = None
    for raw in text.splitlines():
        line = raw.split(";", 1)[0].rstrip()
        if not line.strip():
            continue
        head = re.fullmatch(r"\[([^\]]+)\]", line.strip())
        if head:
            current = contexts.setdefault(head[1], {})
            continue
        m = re.fullmatch(r"\s*(exten|same)\s*=>\s*(.*)", line)
        assert m and current is not None, f"line not understood: {raw!r}"
        kind, rest = m.groups()
        if kind == "exten":
            exten, prio, app = rest.split(",", 2)
            assert prio == "1", f"{raw!r}: an extension must start at priority 1"
            assert exten not in current, f"{raw!r}: extension defined twice"
            current[exten] = []
        else:
            prio, app = rest.split(",", 1)
            assert exten is not None
        pm = re.fullmatch(r"(?:1|n)(?:\((\w+)\))?", prio)
        assert pm, f"{raw!r}: priority {prio!r} not modelled"
        assert "(" in app and app.endswith(")"), f"{raw!r}: App(data) expected"
        name, data = app[:app.index("(")], app[app.index("(") + 1:app.rindex(")")]
        current[exten].append(Priority(pm[1], name, data))
    return contexts


# ------------------------------------------------------------ Asterisk model


def separate_args(buf: str | None, delim: str, *, remove_chars: bool,
                  arraylen: int = 128) -> list[str]:
    """main/app.c ``__ast_app_separate_args``, ported line for line."""
    if buf is None:
        return []
    s = list(buf)
    out: list[str] = []
    i = 0
    paren = quote = bracket = 0
    wasdelim = -1
    while i < len(s) and len(out) < arraylen - 1:
        start = i
        ended = False
        while i < len(s):
            c = s[i]
            if c == "(":
                paren += 1
            elif c == ")":
                paren = max(paren - 1, 0)
            elif c == "[":
                bracket += 1
            elif c == "]":
                bracket = max(bracket - 1, 0)
            elif c == '"' and delim != '"':
                quote ^= 1
                if remove_chars:
                    del s[i]
                    i -= 1
            elif c == "\\":
                if remove_chars:
                    del s[i]
                else:
                    i += 1
            elif c == delim and not paren and not quote and not bracket:
                out.append("".join(s[start:i]))
                wasdelim = i
                i += 1
                ended = True
                break
            i += 1
        if not ended:
            out.append("".join(s[start:]))
            i = len(s)
    if i < len(s):
        out.append("".join(s[i:]))
    elif s and wasdelim == len(s) - 1:
        out.append("")
    return out


def filter_chars(allowed: str, string: str) -> str:
    """func_strings.c ``filter``: ranges ``a-z``; the rest literal (no escapes here)."""
    assert "\\" not in allowed, "escapes in FILTER's allowed characters are not modelled"
    keep: set[str] = set()
    i = 0
    while i < len(allowed):
        c1 = allowed[i]
        if i + 1 < len(allowed) and allowed[i + 1] == "-":
            c2 = allowed[i + 2] if i + 2 < len(allowed) else c1
            keep.update(chr(x) for x in range(ord(c1), ord(c2) + 1))
            i += 3
        else:
            keep.add(c1)
            i += 1
    return "".join(ch for ch in string if ch in keep)


class ExprError(AssertionError):
    """A $[...] Asterisk could not parse: caller text must never get there."""


_TOKEN = re.compile(r'\s*(?:(")((?:\\.|[^"\\])*)"|(!=|<=|>=|[|&=<>()])|([^\s|&=<>()!"]+))')


def evaluate_expression(text: str) -> str:
    """ast_expr2.y for ``| & = != < > <= >= ( )``, strings and integers."""
    tokens: list[tuple[str, str]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExprError(f"cannot tokenise $[{text}] at {pos}")
        if m[1]:
            tokens.append(("val", m[2].replace('\\"', '"')))
        elif m[3]:
            tokens.append(("op", m[3]))
        else:
            tokens.append(("val", m[4]))
        pos = m.end()

    def false(v: str) -> bool:
        return v == "" or (re.fullmatch(r"-?\d+", v) is not None and int(v) == 0)

    def operand(i: int) -> tuple[str, int]:
        if i >= len(tokens):
            raise ExprError(f"$[{text}]: operand missing")
        kind, v = tokens[i]
        if kind == "val":
            return v, i + 1
        if v == "(":
            inner, j = disjunction(i + 1)
            if j >= len(tokens) or tokens[j] != ("op", ")"):
                raise ExprError(f"$[{text}]: ) missing")
            return inner, j + 1
        raise ExprError(f"$[{text}]: unexpected {v!r}")

    def comparison(i: int) -> tuple[str, int]:
        left, i = operand(i)
        while i < len(tokens) and tokens[i][1] in ("=", "!=", "<", ">", "<=", ">="):
            op = tokens[i][1]
            right, i = operand(i + 1)
            if re.fullmatch(r"-?\d+", left) and re.fullmatch(r"-?\d+", right):
                # Decimal: exact, and without int()'s 4300-digit limit (the
                # 8 KiB buffer lets 8,000-digit operands through).
                a: Decimal | str = Decimal(left)
                b: Decimal | str = Decimal(right)
            else:
                a, b = left, right
            result = {"=": a == b, "!=": a != b, "<": a < b, ">": a > b,  # type: ignore[operator]
                      "<=": a <= b, ">=": a >= b}[op]  # type: ignore[operator]
            left = "1" if result else "0"
        return left, i

    def conjunction(i: int) -> tuple[str, int]:
        left, i = comparison(i)
        while i < len(tokens) and tokens[i] == ("op", "&"):
            right, i = comparison(i + 1)
            left = "0" if false(left) or false(right) else left
        return left, i

    def disjunction(i: int) -> tuple[str, int]:
        left, i = conjunction(i)
        while i < len(tokens) and tokens[i] == ("op", "|"):
            right, i = conjunction(i + 1)
            left = right if false(left) else left
        return left, i

    value, end = disjunction(0)
    if end != len(tokens):
        raise ExprError(f"$[{text}]: trailing {tokens[end:]}")
    return value


def check_condition(value: str) -> bool:
    """pbx.c ``pbx_checkcondition``."""
    if not value:
        return False
    m = re.match(r"\s*[-+]?\d+", value)
    return int(m[0]) != 0 if m else True


INT_MAX = 2**31 - 1


def parse_variable_name(var: str) -> tuple[str, int, int]:
    """pbx_variables.c: a ``:`` outside parentheses starts ``offset:length``.

    The parentheses are counted in the text *after* inner substitution, so a
    ``)`` in a value can end the count early (and it may go negative).
    """
    parens = 0
    for i, ch in enumerate(var):
        if ch == "(":
            parens += 1
        elif ch == ")":
            parens -= 1
        elif ch == ":" and parens == 0:
            offset, length = 0, INT_MAX
            m = re.match(r"\s*([-+]?\d+)(?::\s*([-+]?\d+))?", var[i + 1:])
            if m:
                offset = _clamp(int(m[1]))
                if m[2] is not None:
                    length = _clamp(int(m[2]))
            return var[:i], offset, length
    return var, 0, INT_MAX


def _clamp(n: int) -> int:
    return max(-INT_MAX - 1, min(INT_MAX, n))


def substring(value: str, offset: int, length: int) -> str:
    """pbx_variables.c ``substring``."""
    lr = len(value)
    if offset == 0 and length >= lr:
        return value
    if offset < 0:
        offset = max(lr + offset, 0)
    if offset >= lr:
        return ""
    rest = value[offset:]
    if 0 <= length < lr - offset:
        return rest[:length]
    if length < 0:
        return rest[:lr + length - offset] if lr > offset - length else ""
    return rest


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    depth = 1
    for i in range(start, len(text)):
        if text[i] == opening:
            depth += 1
        elif text[i] == closing:
            depth -= 1
            if depth == 0:
                return i
    raise AssertionError(f"unbalanced {opening}{closing} in {text!r}")


class Ended(Exception):
    """How a run of the dialplan ended (a control-flow signal)."""

    def __init__(self, how: str, cause: str = "") -> None:
        super().__init__(how)
        self.how = how
        self.cause = cause


@dataclass
class Frame:
    ret: tuple[str, str, int]
    local: dict[str, str]


AgiHook = Callable[["Channel", list[str]], None]


def agi_sets(status: str) -> AgiHook:
    def hook(chan: Channel, args: list[str]) -> None:
        chan.vars["AGISTATUS"] = "SUCCESS"
        if status:
            chan.vars["MAILCALL_STATUS"] = status
    return hook


def agi_unreachable(chan: Channel, args: list[str]) -> None:
    chan.vars["AGISTATUS"] = "FAILURE"


@dataclass
class Channel:
    plan: dict[str, dict[str, list[Priority]]]
    agi: AgiHook = field(default=agi_sets("VOICEMAIL"))
    hangup_during: str = ""
    """App name whose execution the caller hangs up in (e.g. ReceiveFAX)."""
    vars: dict[str, str] = field(default_factory=lambda: {
        "CHANNEL": "PJSIP/trunk-0000002a", "UNIQUEID": UNIQUEID})
    globals: dict[str, str] = field(default_factory=dict)
    caller_num: str = "0611111111"
    """``CALLERID(num)``: whatever the calling side sent."""
    frames: list[Frame] = field(default_factory=list)
    done: list[tuple[str, list[str]]] = field(default_factory=list)
    where: tuple[str, str, int] = ("", "", 1)

    # -- values
    def get(self, name: str) -> str:
        if name == "EXTEN":
            return self.where[1]
        for frame in reversed(self.frames):  # app_stack.c pushes each frame's variables
            if name in frame.local:
                return frame.local[name]
        return self.vars.get(name, "")

    def subst(self, text: str) -> str:
        out = []
        i = 0
        while i < len(text):
            if text.startswith("${", i):
                j = _closing(text, i + 2, "{", "}")
                out.append(self._value(self.subst(text[i + 2:j])))
                i = j + 1
            elif text.startswith("$[", i):
                j = _closing(text, i + 2, "[", "]")
                out.append(evaluate_expression(self.subst(text[i + 2:j])))
                i = j + 1
            else:
                out.append(text[i])
                i += 1
        return "".join(out)

    def _value(self, inner: str) -> str:
        """One ``${...}`` whose inside is already substituted (pbx_variables.c)."""
        name, offset, length = parse_variable_name(inner)
        if "(" in name:
            function = name[:name.index("(")]
            args = name[name.index("(") + 1:]
            args = args[:args.rindex(")")] if ")" in args else args  # func_args: last )
            value = self._function(function, args)
        else:
            value = self.get(name)
        return substring(value, offset, length)

    def _function(self, name: str, args: str) -> str:
        if name == "LEN":
            return str(len(args))
        if name == "FILTER":
            parts = separate_args(args, ",", remove_chars=False, arraylen=2)
            assert len(parts) == 2, f"FILTER({args}) has no string: Asterisk logs an error"
            return filter_chars(parts[0], parts[1])
        if name == "REPLACE":
            varname, find, *replace = separate_args(args, ",", remove_chars=True, arraylen=3)
            assert not replace, "REPLACE with a replacement character is not modelled"
            value = self.get(varname)
            return "".join(ch for ch in value if ch not in find)  # "" also when blank (-1)
        if name == "FIELDQTY":
            varname, delim = separate_args(args, ",", remove_chars=True, arraylen=2)
            value = self.get(varname)
            return "0" if not value else str(value.count(delim) + 1)
        if name == "GLOBAL":
            return self.globals.get(args, "")
        if name == "CALLERID":
            assert args == "num", f"CALLERID({args}) is not modelled"
            return self.caller_num
        raise AssertionError(f"function {name} is not modelled")

    # -- control flow
    def jump(self, target: str) -> None:
        parts = target.split(",")
        ctx, exten, _ = self.where
        if len(parts) == 3:
            ctx, exten, prio = parts
        elif len(parts) == 2:
            exten, prio = parts
        else:
            (prio,) = parts
        prios = self.plan.get(ctx, {}).get(exten)
        if prios is None:
            raise Ended("bad-jump", target)
        if prio.isdigit():
            number = int(prio)
        else:
            labels = [n for n, p in enumerate(prios, 1) if p.label == prio]
            if not labels:
                raise Ended("bad-jump", target)
            number = labels[0]
        self.where = (ctx, exten, number)

    def run(self, ctx: str, exten: str, *, limit: int = 400) -> Ended:
        self.where = (ctx, exten, 1)
        try:
            for _ in range(limit):
                c, e, n = self.where
                prios = self.plan[c][e]
                if n > len(prios):
                    raise Ended("fell-off")
                self.where = (c, e, n + 1)
                data = self.subst(prios[n - 1].data)[:EXT_DATA_SIZE - 1]
                self.execute(prios[n - 1].app, data)
            raise AssertionError("dialplan loops")
        except Ended as end:
            if end.how in ("hangup", "caller-hangup") and "h" in self.plan.get(self.where[0], {}):
                self.frames.clear()
                try:
                    self.run(self.where[0], "h")
                except Ended:
                    pass
            return end

    def execute(self, app: str, data: str) -> None:
        if app in ("NoOp", "Log", "Answer"):
            self.done.append((app, [data]))
        elif app == "Set":
            name, _, value = data.partition("=")
            self.vars[name] = value
        elif app == "MSet":
            for pair in separate_args(data, ",", remove_chars=True):
                name, _, value = pair.partition("=")
                self.vars[name] = value
        elif app == "GotoIf":
            condition, _, branches = data.partition("?")
            on_true, _, on_false = branches.partition(":")
            branch = on_true if check_condition(condition) else on_false
            if branch:
                self.jump(branch)
        elif app == "ExecIf":
            condition, rest = separate_args(data, "?", remove_chars=True, arraylen=2)
            branches = separate_args(rest, ":", remove_chars=False, arraylen=2)
            branch = branches[0] if check_condition(condition) else (branches[1:] or [""])[0]
            if branch:
                inner = branch[:branch.index("(")]
                self.execute(inner, branch[branch.index("(") + 1:branch.rindex(")")])
        elif app == "Goto":
            self.jump(data)
        elif app == "Gosub":
            label, paren, rest = data.partition("(")
            if ")" in rest:
                rest = rest[:rest.rindex(")")]
            elif paren:  # "Ouch.  No closing paren": the arguments run to the end
                self.done.append(("Log", [f"WARNING,Ouch.  No closing paren: '{data}'?"]))
            args = separate_args(rest, ",", remove_chars=False, arraylen=100) if paren else []
            before = sum(1 for k in self.frames[-1].local if k != "ARGC") if self.frames else 0
            local = {f"ARG{i + 1}": args[i] if i < len(args) else ""
                     for i in range(max(len(args), before))}
            local["ARGC"] = str(len(args))
            frame = Frame(self.where, local)
            self.jump(label)
            self.frames.append(frame)
        elif app == "Return":
            if not self.frames:
                raise Ended("return-without-gosub")
            self.where = self.frames.pop().ret
        elif app == "Hangup":
            self.done.append((app, [data]))
            raise Ended("hangup", data)
        elif app in ("AGI", "Dial", "ReceiveFAX"):
            args = separate_args(data, ",", remove_chars=True)
            self.done.append((app, args))
            if app == "AGI":
                self.agi(self, args)
            if self.hangup_during == app:
                self.hangup_during = ""
                raise Ended("caller-hangup")
        else:
            raise AssertionError(f"application {app} is not modelled")

    def calls(self, app: str) -> list[list[str]]:
        return [args for name, args in self.done if name == app]


# ---------------------------------------------------------------- fixtures

PLAN = parse_dialplan(SNIPPET.read_text())


def doc_line(fragment: str) -> str:
    """The application part of the docs' own example line containing `fragment`."""
    for line in DOC.read_text().splitlines():
        if fragment in line and "exten =>" in line:
            return line.split(";", 1)[0].strip().split(",", 2)[2]
    raise AssertionError(f"docs/asterisk.md has no example line with {fragment!r}")


def call(number: str, entry: str, *, exten: str | None = None,
         preset: dict[str, str] | None = None, **kw: object) -> tuple[Channel, Ended]:
    """A call to extension `exten` (default: `number` itself) whose lines are
    `entry` then Hangup(), on a channel that already holds the `preset` variables."""
    exten = number if exten is None else exten
    app = entry[:entry.index("(")]
    data = entry[entry.index("(") + 1:entry.rindex(")")]
    plan = dict(PLAN)
    plan["from-test"] = {exten: [Priority(None, app, data), Priority(None, "Hangup", "")]}
    chan = Channel(plan, **kw)  # type: ignore[arg-type]
    chan.vars.update(preset or {})
    return chan, chan.run("from-test", exten)


def acceptable(number: str) -> bool:
    return NUMBER.fullmatch(number) is not None and len(number) <= MAX_NUMBER


ROUTE = doc_line("_+X.,1,Gosub(mailcall-route")
FAX = doc_line("Gosub(mailcall-fax")
VOICEMAIL = doc_line("Gosub(mailcall-voicemail")
VOICEMAIL_BUSY = doc_line("Gosub(mailcall-voicemail,busy")
VOICEMAIL_KINDS = {kind: f"Gosub(mailcall-voicemail,{kind},1(${{EXTEN}}))" for kind in KINDS}
ENTRIES = {"route": ROUTE, "fax": FAX,
           **{f"voicemail-{kind}": entry for kind, entry in VOICEMAIL_KINDS.items()}}

HOSTILE = [
    "+3,5,U(sub)", "2&PJSIP/x@trunk", "+32&PJSIP/x@trunk", "201,busy", "+33,3",
    "201)", "201(", "(201)", '"201"', '201"', "20\\1", "201 ", " 201", "2 01", "+",
    "++33", "3+3", "201,/var/spool/mailcall/rec/vm-1.wav", "$[1+1]", "${CHANNEL}",
    "201}", "[201]", "201?x:y", "201|1", "x\" | \"?System(id):", "", "201,", ",201",
    "+33140000201\n", "0x20", "\u0662\u0660\u0661", "1):0:1", "20):0:2", "201:0:1",
    "0,", "0,busy", "201,absence", "(201,busy)", "201\\,busy", '"201,busy"',
    "1" * (MAX_NUMBER + 1), "+" + "1" * MAX_NUMBER,
]
VALID = ["201", "+33140000201", "0140000299", "2", "+1", "0" * 40,
         "1" * MAX_NUMBER, "+" + "1" * (MAX_NUMBER - 1)]
caller_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",),
                                             blacklist_characters="\x00"), max_size=40)
numbers = st.one_of(caller_text, st.from_regex(NUMBER, fullmatch=True),
                    st.builds(lambda a, b: a + b, st.from_regex(NUMBER, fullmatch=True),
                              caller_text))
fuzz = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def assert_refused(chan: Channel, end: Ended) -> None:
    assert end.how == "hangup" and end.cause == "21", (end.how, end.cause, chan.done)
    assert chan.where[0] == "mailcall-refused"
    for app in ("AGI", "Dial", "ReceiveFAX", "Answer"):
        assert not chan.calls(app), (app, chan.done)


def assert_refused_or_exact(chan: Channel, end: Ended, number: str, script: str,
                            *rest: str) -> None:
    """The property, for any entry: refused, or mailcall asked about exactly `number`."""
    if acceptable(number):
        assert chan.calls("AGI") == [[f"{URL}/{script}", number, *rest]], chan.done
    else:
        assert_refused(chan, end)


# ------------------------------------------------------- the model itself


def test_model_follows_asterisk_on_known_cases():
    # app.c: parentheses and quotes protect commas; a trailing comma adds "".
    assert separate_args("a,(b,c),d", ",", remove_chars=False) == ["a", "(b,c)", "d"]
    assert separate_args('a,"b,c"', ",", remove_chars=True) == ["a", "b,c"]
    assert separate_args("a,", ",", remove_chars=False) == ["a", ""]
    assert separate_args("0,", ",", remove_chars=False) == ["0", ""]
    assert separate_args("", ",", remove_chars=False) == []
    assert separate_args("0-9,1,2", ",", remove_chars=False, arraylen=2) == ["0-9", "1,2"]
    # func_strings.c FILTER and README-SERIOUSLY.bestpractices.md's example.
    assert filter_chars("0-9", "500&SIP/itsp/14165551212") == "50014165551212"
    assert filter_chars("+", "+") == "+"
    # ast_expr2: | hands back an operand, comparisons give 1/0.
    assert evaluate_expression('"" | "x"') == "x"
    assert evaluate_expression('"a" | "b"') == "a"
    assert evaluate_expression("3 != 3 | 0 = 0") == "1"
    assert evaluate_expression('("1" != "1" & "1" != "2") | 0 = 0') == "1"
    assert evaluate_expression("80 > 79") == "1" and evaluate_expression("9 > 79") == "0"
    with pytest.raises(ExprError):
        evaluate_expression('"x"" = "1"')
    assert check_condition("0") is False and check_condition("") is False
    assert check_condition("12") is True and check_condition("abc") is True


def _plan(**contexts: list[tuple[str, str]]) -> dict[str, dict[str, list[Priority]]]:
    return {ctx.replace("_", "-"): {"s": [Priority(None, app, data) for app, data in prios]}
            for ctx, prios in contexts.items()}


def test_model_nested_gosub_masks_the_callers_arguments_and_return_restores_them():
    # app_stack.c gosub_exec: max_argc = max(this call's count, the frame below's);
    # ARG1..ARGmax set in the new frame ("" past this call's count), ARGC its own count.
    chan = Channel(_plan(
        outer=[("Gosub", "inner,s,1(${ARG2})"), ("Set", "AFTER=${ARG1}|${ARG2}|${ARGC}"),
               ("Return", "")],
        inner=[("Set", "IN=${ARG1}|${ARG2}|${ARGC}"), ("Return", "")],
        start=[("Gosub", "outer,s,1(a,b)"), ("Set", "BACK=${ARG1}|${ARGC}"),
               ("Hangup", "")]))
    end = chan.run("start", "s")
    assert end.how == "hangup" and not chan.frames
    assert chan.vars["IN"] == "b||1"  # the inner ARG1 is the outer's ARG2; ARG2 masked
    assert chan.vars["AFTER"] == "a|b|2"  # Return brought the outer frame's back
    assert chan.vars["BACK"] == "|"  # and left nothing behind


def test_model_inner_argument_is_the_outer_one_split_again():
    # Gosub(inner,s,1(${ARG1})): the substituted text is split RAW once more, so one
    # argument stays one and unchanged, and one with a comma would have been two.
    for arg in ["201", "(1,2)", '"1,2"', "1\\,2", "x)y(", "+3"]:
        chan = Channel(_plan(
            outer=[("Gosub", "inner,s,1(${ARG1})"), ("Return", "")],
            inner=[("Set", "IN=${ARG1}"), ("Set", "INC=${ARGC}"), ("Return", "")],
            start=[("Gosub", "outer,s,1(" + arg + ")"), ("Hangup", "")]))
        chan.run("start", "s")
        assert (chan.vars["IN"], chan.vars["INC"]) == (arg, "1"), arg


def test_model_goto_out_of_a_nested_subroutine_keeps_its_frames():
    chan = Channel(_plan(
        outer=[("Gosub", "inner,s,1(x)"), ("Return", "")],
        inner=[("Goto", "away,s,1")],
        away=[("Set", "SEEN=${ARG1}"), ("Hangup", "21")],
        start=[("Gosub", "outer,s,1(a)"), ("Hangup", "")]))
    end = chan.run("start", "s")
    assert (end.how, end.cause, chan.where[0]) == ("hangup", "21", "away")
    assert len(chan.frames) == 2 and chan.vars["SEEN"] == "x"


def test_model_cuts_application_data_at_ext_data_size():
    # pbx.c: passdata[EXT_DATA_SIZE]; Gosub without its closing paren then takes
    # the arguments to the end (app_stack.c: "Ouch.  No closing paren").
    long_arg = "1" * EXT_DATA_SIZE
    chan = Channel(_plan(
        inner=[("Set", "IN=${ARG1}"), ("Return", "")],
        start=[("Set", "LONG=" + long_arg), ("Gosub", "inner,s,1(${LONG})"),
               ("Hangup", "")]))
    chan.run("start", "s")
    assert chan.vars["IN"] == "1" * (EXT_DATA_SIZE - 1 - len("inner,s,1("))
    assert any("No closing paren" in args[0] for args in chan.calls("Log"))


def test_every_context_parses_and_entry_lines_come_from_the_docs():
    assert {"mailcall-route", "mailcall-voicemail", "mailcall-greeting", "mailcall-fax",
            CHECK, "mailcall-refused", "mailcall-settings"} <= set(PLAN)
    assert ROUTE == "Gosub(mailcall-route,s,1(${EXTEN}))"
    assert FAX == "Gosub(mailcall-fax,s,1(${EXTEN}))"
    assert VOICEMAIL == "Gosub(mailcall-voicemail,s,1(${CALLERID(num)}))"
    assert VOICEMAIL_BUSY == "Gosub(mailcall-voicemail,busy,1(${CALLERID(num)}))"
    assert set(PLAN["mailcall-voicemail"]) == set(KINDS)  # every extension is an entry


# ------------------------------------------------------------ every entry


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("number", HOSTILE)
def test_every_entry_refuses_hostile_numbers(entry, number):
    chan, end = call(number, ENTRIES[entry], agi=agi_unreachable)
    assert_refused(chan, end)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("args", ["201,busy", "201,", ",201", "201,201", "", None])
def test_every_entry_takes_exactly_one_argument(entry, args):
    """A second argument (an old-style greeting kind, or a comma in the number) or
    none at all is refused before the number is looked at."""
    context, exten = ENTRIES[entry].split("(", 1)[1].split(",")[:2]
    gosub = f"Gosub({context},{exten},1" + (f"({args}))" if args is not None else ")")
    chan, end = call("201", gosub, agi=agi_sets("VOICEMAIL"))
    assert_refused(chan, end)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_entry_entered_with_goto_instead_of_gosub_is_refused(entry):
    context, exten = ENTRIES[entry].split("(", 1)[1].split(",")[:2]
    chan, end = call("201", f"Goto({context},{exten},1)")
    assert_refused(chan, end)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
@pytest.mark.parametrize("number", ["201", "20x"])
def test_every_entry_ignores_a_number_left_from_before(entry, number):
    stale = {"MAILCALL_NUMBER": "+999", "MAILCALL_FAXTO": "+999", "MAILCALL_KIND": "x"}
    chan, end = call(number, ENTRIES[entry], agi=agi_unreachable, preset=stale)
    if acceptable(number):
        assert [args[1] for args in chan.calls("AGI")] == [number]
        assert not any("+999" in arg for _, args in chan.done for arg in args), chan.done
    else:
        assert_refused(chan, end)


def _label(entry: str) -> str:
    return entry.split("(")[1]


CUT_SHORT = [name for name in sorted(ENTRIES)
             if len(_label(ENTRIES[name])) < len(f"{CHECK},s,1")]


@pytest.mark.parametrize("entry", CUT_SHORT)
def test_a_number_cut_short_by_asterisks_data_buffer_is_refused(entry):
    """1(${EXTEN}) fits in the admin's Gosub, but the nested
    Gosub(mailcall-check-number,s,1(${ARG1})) has a longer label: its copy is cut
    (EXT_DATA_SIZE) and would be only the digits in front. The length cap refuses it."""
    room = EXT_DATA_SIZE - 1 - len(_label(ENTRIES[entry]) + "()")  # longest ARG1 that fits
    number = "1" * (room - 1) + "x"
    chan, end = call(number, ENTRIES[entry], agi=agi_unreachable)
    cut = [args for args in chan.calls("Log") if "No closing paren" in args[0]]
    assert len(cut) == 1 and CHECK in cut[0][0], "not the nested Gosub that was cut"
    assert_refused(chan, end)


def test_entries_that_can_be_cut_short_are_tested():
    assert {"route", "fax", "voicemail-s"} <= set(CUT_SHORT)  # shorter labels than the check


# ------------------------------------------------------------------- route


@pytest.mark.parametrize("number", VALID)
def test_route_passes_a_plain_number_unchanged_and_returns(number):
    chan, end = call(number, ROUTE)
    assert chan.calls("AGI") == [[f"{URL}/route", number]]
    assert not chan.calls("Dial")
    assert end.how == "hangup" and chan.where[0] == "from-test"  # Return() came back
    assert not chan.frames


@fuzz
@given(number=numbers)
@example(number="+3,5,U(sub)")
@example(number="0,")
def test_route_any_number_is_refused_or_used_exactly(number):
    for hook in (agi_unreachable, agi_sets("NO_ROUTE")):
        chan, end = call(number, ROUTE, agi=hook)
        assert_refused_or_exact(chan, end, number, "route")
        if acceptable(number):
            dials = chan.calls("Dial")
            assert dials == ([[f"PJSIP/{number}", "20"]] if hook is agi_unreachable else [])


@pytest.mark.parametrize("agistatus", ["SUCCESS", "FAILURE"])
@pytest.mark.parametrize("status", ["", "ERROR", "UNKNOWN_SCRIPT"])
def test_route_falls_back_on_empty_status_whatever_agistatus_says(status, agistatus):
    def hook(chan: Channel, args: list[str]) -> None:
        chan.vars["AGISTATUS"] = agistatus  # REFUSED by mailcall: SUCCESS, status empty
        if status:
            chan.vars["MAILCALL_STATUS"] = status

    chan, end = call("201", ROUTE, agi=hook)
    assert chan.calls("Dial") == [["PJSIP/201", "20"]]
    assert any("AGISTATUS=" + agistatus in args[0] for args in chan.calls("Log"))
    assert end.how == "hangup" and chan.where[0] == "from-test"


def test_route_does_not_trust_a_status_left_from_before():
    chan, _ = call("201", ROUTE, agi=agi_unreachable)
    chan2 = Channel(chan.plan, agi=agi_unreachable)
    chan2.vars.update(MAILCALL_STATUS="VOICEMAIL", MAILCALL_RESULT="BUSY", MAILCALL_STEP="2")
    chan2.run("from-test", "201")
    assert chan2.calls("Dial") == [["PJSIP/201", "20"]]
    assert chan2.vars["MAILCALL_RESULT"] == ""


@pytest.mark.parametrize("status", ["ANSWERED", "VOICEMAIL", "NO_ROUTE", "HANGUP",
                                    "UNREACHABLE", "CALLER_HUNGUP"])
def test_route_a_decision_of_mailcall_is_not_overridden(status):
    chan, end = call("+33140000201", ROUTE, agi=agi_sets(status))
    assert not chan.calls("Dial")
    assert chan.vars["MAILCALL_STATUS"] == status
    assert end.how == "hangup" and chan.where[0] == "from-test"


def test_route_fallback_prefix_and_url_come_from_globals():
    plan = dict(PLAN)
    plan["from-test"] = {"201": [Priority(None, "Gosub", "mailcall-route,s,1(${EXTEN})")]}
    chan = Channel(plan, agi=agi_unreachable,
                   globals={"MAILCALL_AGI": "agi://10.0.0.5:4573",
                            "MAILCALL_FALLBACK": "PJSIP/office-"})
    chan.run("from-test", "201")
    assert chan.calls("AGI") == [["agi://10.0.0.5:4573/route", "201"]]
    assert chan.calls("Dial") == [["PJSIP/office-201", "20"]]


# --------------------------------------------------------------------- fax


def _fax_file() -> str:
    runtime = SimpleNamespace(setting=lambda name: {"spool_dir": SPOOL}[name])
    expected = fax_handler.expected_fax_file(runtime, UNIQUEID)
    assert expected is not None
    return str(expected)


@fuzz
@given(number=numbers)
@example(number="201,/var/spool/mailcall/rec/vm-1.wav")
@example(number="0,")
def test_fax_any_number_is_refused_or_used_exactly(number):
    chan, end = call(number, FAX, agi=agi_sets("FAX"))
    assert_refused_or_exact(chan, end, number, "fax", _fax_file())
    if acceptable(number):
        assert chan.calls("ReceiveFAX") == [[_fax_file()]]


def test_fax_sender_hanging_up_is_handed_over_once_by_h():
    chan, end = call("0140000299", FAX, agi=agi_sets("FAX"), hangup_during="ReceiveFAX")
    assert end.how == "caller-hangup"
    assert chan.calls("AGI") == [[f"{URL}/fax", "0140000299", _fax_file()]]


def test_fax_not_handed_over_is_reported_in_asterisks_log():
    chan, _ = call("0140000299", FAX, agi=agi_unreachable, hangup_during="ReceiveFAX")
    warnings = [args[0] for args in chan.calls("Log") if args[0].startswith("WARNING")]
    assert warnings and _fax_file() in warnings[0] and "not mailed" in warnings[0]


# --------------------------------------------------------------- voicemail


@fuzz
@given(number=numbers)
@example(number="0,")
@example(number="201,busy")
@example(number="201,absence")
@example(number='x" | "?System(id):')
def test_voicemail_any_number_is_refused_or_used_exactly_kind_from_the_extension(number):
    """Through every kind's extension: refused, or exactly the number dialled with
    the kind the admin's Gosub named; nothing the caller sends picks the greeting."""
    for exten, kind in KINDS.items():
        chan, end = call(number, VOICEMAIL_KINDS[exten])
        assert_refused_or_exact(chan, end, number, "voicemail", kind)
        if acceptable(number):
            assert end.how == "hangup" and chan.where[0] == "from-test"


@fuzz
@given(caller=numbers)
@example(caller="201,busy")
@example(caller="0,")
def test_voicemail_docs_examples_refuse_or_use_the_callers_own_number(caller):
    for entry, kind in ((VOICEMAIL, "unavailable"), (VOICEMAIL_BUSY, "busy")):
        chan, end = call(caller, entry, exten="*97", caller_num=caller)
        assert_refused_or_exact(chan, end, caller, "voicemail", kind)


# ---------------------------------------------------------------- greeting


def test_greeting_takes_no_caller_text_and_returns():
    chan, end = call("*98", doc_line("Gosub(mailcall-greeting"), agi=agi_sets("GREETING_SAVED"))
    assert chan.calls("AGI") == [[f"{URL}/greeting"]]
    assert end.how == "hangup" and chan.where[0] == "from-test"


# --------------------------------------------------- nothing else reads input

CHECK_CALL = Priority(None, "Gosub", f"{CHECK},s,1(${{ARG1}})")
"""The only place ARG1 is expanded outside the check: as the whole argument list
of a Gosub, the same shape as the admin's 1(${EXTEN}), split again the same way."""
REFUSED = "?mailcall-refused,s,1"


def straight_line(context: str, exten: str) -> list[Priority]:
    """The priorities an entry runs when no check refuses, following Goto."""
    prios = PLAN[context][exten]
    out: list[Priority] = []
    n = 0
    while n < len(prios) and len(out) < 50:
        prio = prios[n]
        if prio.app == "Goto":
            target = prio.data.split(",")
            assert len(target) == 2, f"{context},{exten}: Goto leaves the context: {prio}"
            exten, label = target
            prios = PLAN[context][exten]
            n = next(i for i, p in enumerate(prios) if p.label == label or str(i + 1) == label)
            continue
        out.append(prio)
        if prio.app == "Return":
            break
        n += 1
    return out


def test_caller_text_is_only_named_until_it_is_known_to_be_digits():
    """Caller text arrives in ARG1 only (${EXTEN}, caller ID and the like are never
    read by the snippet, and no other argument is). Outside the check, ARG1 is
    expanded only as the one argument of the Gosub to the check. In the check,
    until the digits-and-+ test has passed, ARG1 is given to REPLACE/FIELDQTY by
    NAME and never expanded."""
    whitelisted_in = set()
    check_calls = set()
    for ctx, extens in PLAN.items():
        for exten, prios in extens.items():
            whitelisted = False
            for n, prio in enumerate(prios, 1):
                where = (ctx, exten, n, prio)
                assert not re.search(r"\$\{(EXTEN|CALLERID|DNID|RDNIS)\b", prio.data), where
                assert set(re.findall(r"\$\{(ARG\w*)", prio.data)) <= {"ARG1", "ARGC"}, where
                if ctx != CHECK:
                    if "${ARG1" in prio.data:
                        assert prio == CHECK_CALL, where
                        check_calls.add((ctx, exten))
                    continue
                if not whitelisted:
                    assert "${ARG1" not in prio.data, where
                    named = re.sub(r"(REPLACE|FIELDQTY)\(ARG1,", "", prio.data)
                    assert "ARG1" not in named, where
                if prio.app == "GotoIf" and "${FIELDQTY(MAILCALL_REST,-)} != 0" in prio.data:
                    assert prio.data.endswith(REFUSED), where
                    whitelisted = True
                    whitelisted_in.add(ctx)
    assert whitelisted_in == {CHECK}
    assert check_calls == {("mailcall-route", "s"), ("mailcall-voicemail", "s"),
                           ("mailcall-fax", "s")}


def test_every_entry_checks_before_any_use():
    """Each entry: its own ARGC test, then the check, before anything else is done;
    afterwards the number is only read from MAILCALL_NUMBER, which only the check sets."""
    for name, entry in ENTRIES.items():
        context, exten = entry.split("(", 1)[1].split(",")[:2]
        run = straight_line(context, exten)
        steps = [p for p in run if not (p.app == "Set" and p.data.startswith("MAILCALL_KIND="))]
        assert steps[0] == Priority(steps[0].label, "GotoIf",
                                    '$["${ARGC}" != "1"]' + REFUSED), name
        assert steps[1] == CHECK_CALL, name
    for ctx, extens in PLAN.items():
        for prios in extens.values():
            for prio in prios:
                if prio.app in ("Set", "MSet") and "MAILCALL_NUMBER=" in prio.data:
                    assert ctx == CHECK, prio
    check = PLAN[CHECK]["s"]
    assert check[0] == Priority(None, "Set", "MAILCALL_NUMBER=")  # never a stale value
    assert check[-1] == Priority(None, "Return", "")
    refusals = [p for p in check if p.app == "GotoIf" and p.data.endswith(REFUSED)]
    assert len(refusals) == 3  # argument count, characters, filtered == given and length
    assert refusals[0].data == '$["${ARGC}" != "1"]' + REFUSED
    assert f"${{LEN(${{ARG1}})}} > {MAX_NUMBER}" in refusals[-1].data
    assert check.index(refusals[-1]) == len(check) - 2  # nothing between it and Return
    assert PLAN["mailcall-refused"]["s"][-1] == Priority(None, "Hangup", "21")


def test_voicemail_kind_is_written_in_the_snippet_per_extension():
    for exten, kind in KINDS.items():
        first = PLAN["mailcall-voicemail"][exten][0]
        assert first == Priority(None, "Set", f"MAILCALL_KIND={kind}"), exten
    sets = [p for extens in PLAN.values() for prios in extens.values() for p in prios
            if "MAILCALL_KIND=" in p.data]
    assert all(p.data in {f"MAILCALL_KIND={k}" for k in set(KINDS.values())} for p in sets)
