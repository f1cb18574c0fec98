"""The shipped dialplan's number check, run by the real Asterisk on hostile numbers.

This replaces the model of Asterisk's dialplan engine that
tests/agi/test_contrib_dialplan.py used to run the snippet in: the numbers
now arrive the way an attacker sends them, as the user part of a SIP
request URI (percent-encoded, decoded by PJSIP: commas, ``&``, ``@``, quotes,
``${``, ``$[``, CR LF...), and go through every entry of the snippet:
``mailcall-route``, ``mailcall-fax`` and the four ``mailcall-voicemail``
kinds, each called as docs/asterisk.md §4 writes it
(``Gosub(ctx,exten,1(${EXTEN}))``, entry contexts ``live-*`` of
tests/live/conftest.py). The property: a number is refused (SIP 403: hung up
with cause 21, ``mailcall refused the call`` in Asterisk's log, no AGI, no
Dial, no ReceiveFAX) unless it is one optional leading ``+`` and digits, and
then mailcall is asked about exactly that number.

What SIP cannot carry is given to the same Gosub lines by a test context
instead (``[live-misc]`` below): PJSIP cuts the request-URI user and the
caller number to 79 characters (AST_MAX_EXTENSION), so numbers longer than
the check's cap, and one long enough to be cut by Asterisk itself (a ``${...}``
expansion keeps 4095 bytes: the cut-off tail, a letter, is lost and only
digits are left, which the length cap refuses), are written in the dialplan;
so are the admin's own mistakes (no argument, two arguments, Goto instead of
Gosub, variables left from before).
"""

from __future__ import annotations

import random
import re

import pytest

from tests.support.sipp import Hangup, Pause, sip_user

from .checks import executed

NUMBER = re.compile(r"\+?[0-9]+")
MAX_NUMBER = 79  # AST_MAX_EXTENSION (80) without its NUL
VAR_BUF_SIZE = 4096  # pbx_variables.c: what one ${...} expansion keeps, NUL included
ENTRIES = {
    "route": ("live-route", "mailcall-route,s,1", "route"),
    "fax": ("live-fax", "mailcall-fax,s,1", "fax"),
    "voicemail-s": ("live-vm-s", "mailcall-voicemail,s,1", "voicemail"),
    "voicemail-unavailable": ("live-vm-unavailable", "mailcall-voicemail,unavailable,1",
                              "voicemail"),
    "voicemail-busy": ("live-vm-busy", "mailcall-voicemail,busy,1", "voicemail"),
    "voicemail-absence": ("live-vm-absence", "mailcall-voicemail,absence,1", "voicemail"),
}
"""Entry -> (test context, Gosub label as the docs write it, AGI script it reaches)."""

HOSTILE = [
    "+3,5,U(sub)", "2&PJSIP/x@trunk", "+32&PJSIP/x@trunk", "201,busy", "+33,3",
    "201)", "201(", "(201)", '"201"', '201"', "20\\1", "201 ", " 201", "2 01", "+",
    "++33", "3+3", "201,/var/spool/mailcall/rec/vm-1.wav", "$[1+1]", "${CHANNEL}",
    "201}", "[201]", "201?x:y", "201|1", 'x" | "?System(id):', "201,", ",201",
    "+33140000201\n", "+33140000201\r\nBcc: x@evil.example", "0x20", "\u0662\u0660\u0661",
    "1):0:1", "20):0:2", "201:0:1", "0,", "0,busy", "201,absence", "(201,busy)",
    "201\\,busy", '"201,busy"', "201;x=y", "${SHELL(id)}", "$(id)", "`id`", "*97", "#",
]
"""Numbers a caller can put in the request URI (the empty one cannot be sent:
a URI without a user reaches the dialplan as ``s``)."""
PLAIN = ["+33199999999", "0199999999", "9", "+9", "0" * 40, "9" * MAX_NUMBER]
"""Acceptable numbers nobody in the test policy has (mailcall answers NO_ROUTE /
NO_MAILBOX at once, so nothing rings)."""
ALPHABET = "0123456789+,&()$ {}[]\"'\\:|?/@;#*\n\r\t%-_.!~=x\u0662é"


def corpus(seed: str, count: int = 40) -> list[str]:
    """Random numbers (seeded by the entry's name: the same ones every run), a third
    plain, the rest mixed with the characters that mean something to Asterisk."""
    rnd = random.Random(seed)
    out = []
    while len(out) < count:
        if len(out) % 3 == 0:
            text = rnd.choice(["", "+"]) + "9" + "".join(
                rnd.choice("0123456789") for _ in range(rnd.randrange(0, 30)))
        else:
            text = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randrange(1, 30)))
        if text not in ("h",) and text not in out:
            out.append(text)
    return out


def acceptable(number: str) -> bool:
    return NUMBER.fullmatch(number) is not None and len(number) <= MAX_NUMBER


def refused_channels(log: str) -> list[str]:
    return re.findall(r"WARNING\[[^]]*\]\[[^]]*\] Ext\. s: mailcall refused the call on (\S+?):",
                      log)


def steps_on(channel: str, log: str, apps: tuple[str, ...]) -> list[str]:
    pattern = rf'Executing \[[^\]]*\] ({"|".join(apps)})\("{re.escape(channel)}"'
    return re.findall(pattern, log)


def agi_args(log: str) -> list[str]:
    return re.findall(r"AGI Tx >> agi_arg_1: (.*)", log)


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_every_entry_refuses_hostile_numbers_and_passes_plain_ones_exactly(live, entry):
    context, _label, script = ENTRIES[entry]
    numbers = list(dict.fromkeys(HOSTILE + PLAIN + corpus(entry)))
    sipp = live.calls(numbers, [Pause(400), Hangup()], via=context)
    outcomes = sipp.outcomes()
    assert len(outcomes) == len(numbers), "sipp did not place every call"
    live.wait_idle()
    log = live.asterisk_log()

    wrong = {n: outcomes[sip_user(n)] for n in numbers
             if (outcomes[sip_user(n)] == 403) == acceptable(n)}
    assert not wrong, f"refused/accepted the wrong way (403 = refused): {wrong}"
    refused = refused_channels(log)
    assert len(refused) == sum(not acceptable(n) for n in numbers)
    for channel in refused:
        assert channel.startswith(f"PJSIP/{context}-"), channel
        assert not steps_on(channel, log, ("AGI", "Dial", "ReceiveFAX", "Answer")), channel
    asked = agi_args(log)
    expected = [n for n in numbers if acceptable(n)]
    assert sorted(asked) == sorted(expected), "mailcall was not asked about exactly them"
    assert all(f"agi://127.0.0.1:{live.agi_port}/{script}" in line
               for line in executed(log, "AGI"))


def test_trunk_entry_of_the_docs_refuses_the_injection_numbers_of_the_issue(live):
    """``_+X.`` in the docs' [from-trunk] matches these: the check refuses them."""
    numbers = ["+3,5,U(sub)", "+32&PJSIP/x@trunk", "+33140000201,busy", "+3${CHANNEL}"]
    sipp = live.calls(numbers, [Pause(400), Hangup()], via="trunk")
    assert set(sipp.outcomes().values()) == {403}
    log = live.asterisk_log()
    assert len(refused_channels(log)) == len(numbers)
    assert not executed(log, "Dial") and not executed(log, "AGI")
    assert all(re.search(rf"Executing \[{re.escape(n)}@from-trunk:1\] Gosub", log)
               for n in numbers), "not the docs' _+X. line that took them"
    assert "agi session" not in live.mailcall_log()


# ------------------------------------------------------------------ [live-misc]


def _misc_dialplan() -> tuple[str, dict[str, str]]:
    """Test lines for what SIP cannot carry; returns the context and name -> expectation
    ("refused", or the number mailcall must be asked about)."""
    lines = ["[live-misc]"]
    expect: dict[str, str] = {}

    def add(name: str, body: list[str], outcome: str) -> None:
        lines.append(f"exten => {name},1,{body[0]}")
        lines.extend(f" same => n,{step}" for step in [*body[1:], "Hangup()"])
        expect[name] = outcome

    for entry, (_context, label, _script) in sorted(ENTRIES.items()):
        ctx, exten = label.split(",")[:2]
        add(f"noarg-{entry}", [f"Gosub({label})"], "refused")
        add(f"emptyarg-{entry}", [f"Gosub({label}())"], "refused")
        add(f"twoargs-{entry}", [f"Gosub({label}(+33199999999,busy))"], "refused")
        add(f"goto-{entry}", [f"Goto({ctx},{exten},1)"], "refused")
        add(f"stale-{entry}", ["MSet(MAILCALL_NUMBER=+999,MAILCALL_FAXTO=+999,MAILCALL_KIND=x)",
                               f"Gosub({label}(20x))"], "refused")
        add(f"staleok-{entry}", ["MSet(MAILCALL_NUMBER=+999,MAILCALL_FAXTO=+999,MAILCALL_KIND=x)",
                                 f"Gosub({label}(+33199999999))"], "+33199999999")
        add(f"long-{entry}", [f"Gosub({label}({'9' * (MAX_NUMBER + 1)}))"], "refused")
        add(f"longplus-{entry}", [f"Gosub({label}(+{'9' * MAX_NUMBER}))"], "refused")
        # A value longer than a ${...} expansion keeps (4095 bytes, VAR_BUF_SIZE in
        # pbx_variables.c), ending in a letter: expanded into the Gosub it is cut,
        # the letter with it, and what is left is digits only.
        add(f"cut-{entry}", [f"Set(L={'9' * (VAR_BUF_SIZE + 100)}x)", f"Gosub({label}(${{L}}))"],
            "refused")
    return "\n".join(lines) + "\n", expect


MISC, MISC_EXPECT = _misc_dialplan()


def test_what_sip_cannot_carry_is_refused_by_the_same_check(live_factory):
    """No argument, two, Goto instead of Gosub, a number over 79 characters, one cut
    by the 8 KiB data buffer in the nested Gosub, a stale MAILCALL_NUMBER: refused,
    or (a valid number after stale variables) asked about exactly as given."""
    live = live_factory(dialplan=MISC)
    names = sorted(MISC_EXPECT)
    sipp = live.calls(names, [Pause(400), Hangup()], via="live-misc")
    live.wait_idle()
    log = live.asterisk_log()
    outcomes = sipp.outcomes()
    refused = [n for n in names if MISC_EXPECT[n] == "refused"]
    assert {n: outcomes[n] for n in refused if outcomes[n] != 403} == {}
    assert len(refused_channels(log)) == len(refused)
    assert sorted(agi_args(log)) == sorted(v for v in MISC_EXPECT.values() if v != "refused")
    assert not re.search(r"agi_arg_\d: \+999|MAILCALL_FAXTO=\+999.*AGI", log)
    for name in (n for n in names if n.startswith("cut-")):
        channel = re.search(rf"Executing \[{name}@live-misc:1\] Set\(\"(\S+)\"", log)[1]
        rest = re.search(r"Executing \[s@mailcall-check-number:4\] GotoIf\("
                         rf'"{re.escape(channel)}", "(\d)\?', log)
        assert rest and rest[1] == "0", (name, "the letter was not cut: not the case it claims")
        assert channel in refused_channels(log), name
    assert not executed(log, "Dial") and not executed(log, "ReceiveFAX")
