"""The shape of the shipped dialplan, read as text: what no run of it can show.

How the snippet *behaves* on hostile numbers is proven on the real Asterisk
now (tests/live/test_dialplan_live.py: every entry, the numbers sent as SIP
request URIs, plus what SIP cannot carry); the model of Asterisk's dialplan
engine this module used to hold is gone. What stays here are properties of
the text itself, for every line of it, which a run only samples: that caller
text (ARG1) is never *expanded* anywhere until the check has seen that it is
digits and ``+`` (before that it is only *named*, to REPLACE() and
FIELDQTY()), that every entry checks before anything else, that the greeting
kind is written per extension, and that the fallback dials only the checked
number. The entry lines are the ones docs/asterisk.md tells sysadmins to write.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .support import REPO

SNIPPET = REPO / "contrib" / "asterisk" / "extensions-mailcall.conf"
DOC = REPO / "docs" / "asterisk.md"
MAX_NUMBER = 79  # AST_MAX_EXTENSION (80) without its NUL
KINDS = {"s": "unavailable", "unavailable": "unavailable", "busy": "busy",
         "absence": "absence"}
CHECK = "mailcall-check-number"

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


PLAN = parse_dialplan(SNIPPET.read_text())


def doc_line(fragment: str) -> str:
    """The application part of the docs' own example line containing `fragment`."""
    for line in DOC.read_text().splitlines():
        if fragment in line and "exten =>" in line:
            return line.split(";", 1)[0].strip().split(",", 2)[2]
    raise AssertionError(f"docs/asterisk.md has no example line with {fragment!r}")


ROUTE = doc_line("_+X.,1,Gosub(mailcall-route")
FAX = doc_line("Gosub(mailcall-fax")
VOICEMAIL = doc_line("Gosub(mailcall-voicemail")
VOICEMAIL_BUSY = doc_line("Gosub(mailcall-voicemail,busy")
VOICEMAIL_KINDS = {kind: f"Gosub(mailcall-voicemail,{kind},1(${{EXTEN}}))" for kind in KINDS}
ENTRIES = {"route": ROUTE, "fax": FAX,
           **{f"voicemail-{kind}": entry for kind, entry in VOICEMAIL_KINDS.items()}}


def test_every_context_parses_and_entry_lines_come_from_the_docs():
    assert {"mailcall-route", "mailcall-voicemail", "mailcall-greeting", "mailcall-fax",
            CHECK, "mailcall-refused", "mailcall-settings"} <= set(PLAN)
    assert ROUTE == "Gosub(mailcall-route,s,1(${EXTEN}))"
    assert FAX == "Gosub(mailcall-fax,s,1(${EXTEN}))"
    assert VOICEMAIL == "Gosub(mailcall-voicemail,s,1(${CALLERID(num)}))"
    assert VOICEMAIL_BUSY == "Gosub(mailcall-voicemail,busy,1(${CALLERID(num)}))"
    assert set(PLAN["mailcall-voicemail"]) == set(KINDS)  # every extension is an entry


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


def test_the_fallback_dials_only_what_the_admin_set_for_the_checked_number():
    """[mailcall-fallback] is reached from mailcall-route only, after the check; what
    it dials is built from MAILCALL_NUMBER (set only by the check) and the admin's
    [globals], nothing else (live: tests/live/test_fallback_live.py)."""
    callers = [(ctx, exten, n) for ctx, extens in PLAN.items() for exten, prios in extens.items()
               for n, prio in enumerate(prios) if "mailcall-fallback" in prio.data]
    assert [(ctx, exten) for ctx, exten, _ in callers] == [("mailcall-route", "s")]
    route = PLAN["mailcall-route"]["s"]
    assert route.index(CHECK_CALL) < callers[0][2]
    fallback = [p for prios in PLAN["mailcall-fallback"].values() for p in prios]
    targets = {p.data.split("=", 1)[1] for p in fallback
               if p.app == "Set" and p.data.startswith("MAILCALL_FALLBACK_TARGET=")}
    assert targets == {"${GLOBAL(MAILCALL_FALLBACK_${MAILCALL_NUMBER})}",
                       "${MAILCALL_FALLBACK_DIAL}${MAILCALL_NUMBER}",
                       "${GLOBAL(MAILCALL_OPERATOR)}"}
    dials = [p.data for extens in PLAN.values() for prios in extens.values() for p in prios
             if p.app == "Dial"]
    assert dials == ["${MAILCALL_FALLBACK_TARGET},20"]
    for prio in fallback:
        assert not re.search(r"\$\{(ARG|EXTEN|CALLERID|DNID|RDNIS)", prio.data), prio
