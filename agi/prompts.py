"""Every stock prompt mailcall makes Asterisk play, in one table.

A prompt Asterisk cannot find is silence for the caller and a WARNING in
Asterisk's log nobody reads (``vm-invalid-option``, once played here, is not
in Debian's core prompts). So handlers never write a prompt name themselves:
they use these constants, and ``tests/agi/test_prompts.py`` checks that each
one is in the prompt sets docs/asterisk.md section 1 installs and links
(Debian's ``asterisk-core-sounds-en-wav`` and ``-fr-wav``, 1.6.1) and that no
handler source names a prompt outside this table.

Asterisk picks the file for the channel's language (``CHANNEL(language)``,
which every handler sets from the callee's ``language`` first).
"""

from __future__ import annotations

from types import MappingProxyType

IS_UNAVAILABLE = "vm-isunavail"
"""Stock greeting, callee unavailable (or absent): "... is unavailable"."""
IS_ON_PHONE = "vm-isonphone"
"""Stock greeting, callee busy: "... is on the phone"."""
LEAVE_MESSAGE = "vm-intro"
"""After the stock greeting: leave a message after the tone, # when done."""
BEEP = "beep"
"""Played by Asterisk itself for ``RECORD FILE ... BEEP`` (voicemail, greetings)."""
ENTER_PIN = "agent-pass"
"""Greeting menu: "please enter your password followed by the pound key"."""
WRONG_PIN = "auth-incorrect"
"""Greeting menu: the PIN was wrong."""
CHOOSE_GREETING = "vm-rec-unv"
"""Greeting menu: what to record (1 unavailable, 2 busy, 3 absence)."""
INVALID_CHOICE = "pm-invalid-option"
"""Greeting menu: a digit that is not one of the kinds offered."""
SAVED = "vm-msgsaved"
"""Greeting menu: the new greeting is kept."""
GOODBYE = "vm-goodbye"
"""Greeting menu: the call ends (done, wrong PIN three times, locked)."""

STOCK_GREETINGS: MappingProxyType[str, tuple[str, ...]] = MappingProxyType({
    "unavailable": (IS_UNAVAILABLE, LEAVE_MESSAGE),
    "busy": (IS_ON_PHONE, LEAVE_MESSAGE),
    "absence": (IS_UNAVAILABLE, LEAVE_MESSAGE),
})
"""Played, in order, when the user has no personal or generated greeting of that kind."""

ALL: frozenset[str] = frozenset({
    IS_UNAVAILABLE, IS_ON_PHONE, LEAVE_MESSAGE, BEEP, ENTER_PIN, WRONG_PIN,
    CHOOSE_GREETING, INVALID_CHOICE, SAVED, GOODBYE,
})
"""Every prompt above: what the prompt sets must hold."""
