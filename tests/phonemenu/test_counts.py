"""The greeting's voicemail count: the lamp's exact counts when it has them, never a capped
listing's length said as if it were all.

Real pluggy (plugins registered on the runtime's plugin manager, called through
``pm.hook.mailcall_voice_counts``), real Dovecot, real AGI server and speech
engine. What was said is read from the commands (stock prompts, SAY NUMBER) and,
for generated speech, from the sentences the real engine was asked to speak
(:class:`SaidEngine` records them on their way to eSpeak NG).
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from mailcall.core.contracts import VoiceCounts
from mailcall.core.hookspecs import hookimpl
from mailcall.speech.espeak import EspeakEngine
from tests.agi.harness import serving
from tests.support.lamp import CountingLamp

from .phone import Phone, Press, run_phone
from .support import PIN, cleanup, start_mailboxes


class SaidEngine(EspeakEngine):
    """eSpeak NG itself; each sentence it is asked to speak is noted first."""

    def __init__(self) -> None:
        super().__init__()
        self.said: list[str] = []

    def synthesize_sentence(self, sentence: str, language: str):
        self.said.append(sentence)
        return super().synthesize_sentence(sentence, language)


class Speech:
    def __init__(self) -> None:
        self.engine = SaidEngine()

    @hookimpl
    def mailcall_speech_engines(self):
        return [self.engine]


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    made.speech = Speech()
    made.runtime.pm.register(made.speech, name="said-speech")
    yield made
    cleanup(made)


def greeting(boxes) -> Phone:
    """PIN, then hang up at the main menu: everything said before it is the greeting."""
    phone = Phone([Press("GET DATA agent-pass", digits=PIN),
                   Press("STREAM FILE vm-onefor", hangup=True)])

    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address)
    return asyncio.run(go())


def heard(phone: Phone) -> list[str]:
    """The stock prompts and numbers played from the PIN on."""
    names = [n for n in phone.streams() if not n.startswith("/")]
    return names[names.index("agent-pass") + 1:]


def test_the_lamps_counts_are_said_as_numbers(boxes):
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    lamp = CountingLamp(VoiceCounts(new=1234, old=56))
    boxes.runtime.pm.register(lamp, name="lamp")
    phone = greeting(boxes)
    assert lamp.asked == ["alice"]
    assert heard(phone)[:8] == ["vm-youhave", "digits:1234", "vm-INBOX", "vm-messages",
                                "vm-and", "digits:56", "vm-Old", "vm-messages"], heard(phone)
    assert not phone.missing


def test_without_a_lamp_a_complete_listing_is_counted_exactly(boxes):
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    boxes.runtime.pm.register(CountingLamp(None), name="lamp")  # the lamp cannot read the folder
    phone = greeting(boxes)
    assert heard(phone)[:4] == ["vm-youhave", "digits:2", "vm-INBOX", "vm-messages"]


def test_a_lamp_slower_than_a_second_is_not_waited_for(boxes):
    boxes.voicemail("alice", "c1")
    boxes.runtime.pm.register(CountingLamp(VoiceCounts(new=9, old=9), delay=5.0), name="lamp")
    phone = greeting(boxes)
    pin = next(t for t, line in phone.sent_at if "agent-pass" in line)
    said = next(t for t, line in phone.sent_at if "vm-youhave" in line)
    assert said - pin < 2.0
    assert heard(phone)[:4] == ["vm-youhave", "digits:1", "vm-INBOX", "vm-message"]


def test_a_capped_listing_is_said_as_at_least_never_as_the_count(boxes):
    """max_listed = 2 and three voicemails, no lamp: "at least 2", and the envelopes do not
    say "of 2" either."""
    config = boxes.phone_config()
    config.write_text(config.read_text() + "max_listed = 2\n")
    for n in range(3):
        boxes.voicemail("alice", f"c{n}")
    start = time.monotonic()
    phone = Phone([Press("GET DATA agent-pass", digits=PIN),
                   Press("STREAM FILE vm-onefor", key="1"),
                   Press(r"STREAM FILE \S*/call-\S*/vm-\d+ ", hangup=True)])

    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address)
    asyncio.run(go())
    assert time.monotonic() - start < 30
    said = boxes.speech.engine.said
    assert "You have at least 2 new voice messages." in said, said
    assert not any(re.fullmatch(r"digits:[23]", n) for n in phone.streams()), phone.streams()
    assert "New message 1." in said and not any(" of 2" in s for s in said), said


def test_an_envelope_made_ahead_is_played_even_unfinished_never_made_twice(boxes):
    """"6" pressed as soon as a voicemail's audio starts: the next envelope, being spoken
    ahead, is played as its sentences come (each made once), and the next audio was
    fetched ahead too."""
    for n in range(3):
        boxes.voicemail("alice", f"c{n}", caller=f"+3361234567{n}")
    phone = Phone([Press("GET DATA agent-pass", digits=PIN),
                   Press("STREAM FILE vm-onefor", key="1"),
                   Press(r"STREAM FILE \S*/call-\S*/vm-\d+ ", key="6"),
                   Press(r"STREAM FILE \S*/call-\S*/vm-\d+ ", key="6"),
                   Press(r"STREAM FILE \S*/call-\S*/vm-\d+ ", key="#")])

    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address)
    asyncio.run(go())
    said = boxes.speech.engine.said
    for n in (1, 2, 3):
        assert said.count(f"New message {n} of 3.") == 1, said
    assert len(phone.streams(r"/vm-\d+$")) == 3 and not phone.missing
