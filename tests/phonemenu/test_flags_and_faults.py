"""Issue #12's "Bad input and faults" on the whole menu: slow or failing IMAP, speech that
fails, a key at the wrong moment — and the flags a mail client sees afterwards.

Peers are real: the private Dovecot of support.py, reached through :class:`Relay`, a TCP
relay on loopback that holds one client command for a while (IMAP slow) or cuts the
connection on it (IMAP gone mid-call), as a congested or restarted server does; the
real espeak-ng engine, behind :class:`Spoken`, which writes down every sentence it is
asked to say and can fail on one, as an engine does on a sentence it cannot say. The
caller is the scripted fake Asterisk of phone.py.
"""

from __future__ import annotations

import asyncio
import re
from email.message import EmailMessage

import pytest

from mailcall.core.hookspecs import hookimpl
from mailcall.speech.errors import SpeechFailed
from mailcall.speech.espeak import EspeakEngine
from tests.agi.harness import serving

from .phone import Phone, Press, run_phone
from .support import LIVE_POLICY, PIN, cleanup, plain_mail, start_mailboxes

AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
MENU_WAIT = r"WAIT FOR DIGIT"
ONE_MOMENT = r"STREAM FILE one-moment-please "
HOLD_S = 1.4
"""Longer than SLOW_S (phonemenu/waiting.py, 1 s: "one moment please"), within the timeout."""


class Relay:
    """Loopback TCP relay to Dovecot's IMAP port: the first client command holding
    `pattern` is held `hold` seconds (slow server), or the connection is cut on it
    (`cut`: the server went away under the session)."""

    def __init__(self, port: int, pattern: bytes, *, hold: float = 0.0,
                 cut: bool = False) -> None:
        self.port = port
        self.pattern = pattern
        self.hold = hold
        self.cut = cut
        self.fired = 0
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()

    async def _client(self, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)

        async def down() -> None:
            while data := await up_reader.read(65536):
                writer.write(data)
                await writer.drain()

        async def up() -> None:
            while data := await reader.read(65536):
                if not self.fired and self.pattern in data:
                    self.fired += 1
                    if self.cut:
                        return
                    await asyncio.sleep(self.hold)
                up_writer.write(data)
                await up_writer.drain()

        tasks = [asyncio.ensure_future(down()), asyncio.ensure_future(up())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        except Exception:  # noqa: S110 - a broken pipe is the end of this connection
            pass
        finally:
            for task in tasks:
                task.cancel()
            for w in (writer, up_writer):
                w.close()


class Spoken:
    """The real espeak-ng engine, first in plugin order, with each sentence it is asked to
    say written down; a sentence holding `fail` raises the engine's own SpeechFailed."""

    name = "espeak-ng-recorded"

    def __init__(self, fail: str | None = None) -> None:
        self.engine = EspeakEngine()
        assert self.engine.available, f"espeak-ng is needed here: {self.engine.problem}"
        self.fail = fail
        self.said: list[str] = []

    @property
    def sample_rate(self) -> int:
        return self.engine.sample_rate

    def resolve_language(self, language: str) -> str | None:
        return self.engine.resolve_language(language)

    def synthesize_sentence(self, sentence: str, language: str):
        self.said.append(sentence)
        if self.fail and self.fail in sentence:
            raise SpeechFailed(f"cannot say {sentence!r}")
        return self.engine.synthesize_sentence(sentence, language)

    def synthesize(self, text: str, language: str, out_path: str) -> bool:
        return self.engine.synthesize(text, language, out_path)

    @hookimpl(tryfirst=True)
    def mailcall_speech_engines(self) -> list:
        return [self]


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    yield made
    cleanup(made)


def config(boxes, port: int, **extra) -> None:
    """phone-menu.toml for this call: the mail store through the relay at `port`."""
    lines = ["[mailstore]", f"port = {port}",
             f'password_file = "{boxes.work / "imap-phone.secret"}"', "timeout = 3.0",
             *(f"{k} = {v}" for k, v in extra.items())]
    boxes.phone_config().write_text("\n".join(lines) + "\n")


def call(boxes, phone: Phone, relay: Relay | None = None, **extra) -> Phone:
    async def go():
        port = boxes.dovecot.imap_port
        if relay is not None:
            port = await relay.start()
        config(boxes, port, **extra)
        try:
            async with serving(boxes.runtime) as server:
                return await run_phone(phone, *server.address)
        finally:
            if relay is not None:
                await relay.stop()
    return asyncio.run(go())


def pin_then(*rules: Press) -> list[Press]:
    return [Press("GET DATA agent-pass", digits=PIN), *rules]


def status(phone: Phone) -> str | None:
    return phone.variables_set.get("MAILCALL_STATUS")


def flags(boxes, folder: str) -> list[set[str]]:
    return [f for _uid, f in boxes.folder("alice", folder)]


# ------------------------------------------------------------------ login


def test_a_key_during_one_moment_at_login_acts_in_the_menu(boxes):
    """IMAP slow at login: "one moment please" plays, the caller presses 1 — the call goes
    on and 1 listens to the first voicemail (it used to end the call with an error)."""
    boxes.voicemail("alice", "c1")
    relay = Relay(boxes.dovecot.imap_port, b" LOGIN ", hold=HOLD_S)
    phone = call(boxes, Phone(pin_then(Press(ONE_MOMENT, key="1"), Press(AUDIO, key="#"))),
                 relay)
    assert relay.fired == 1
    assert phone.streams("^one-moment-please$"), phone.commands
    assert status(phone) == "MAILBOX_DONE", phone.commands[-10:]
    assert len(phone.streams(r"/vm-\d+$")) == 1  # the key acted: the voicemail played
    assert not any("vm-onefor" in c for c in phone.commands)  # typed ahead of the counts
    assert flags(boxes, "Voicemail") == [{"\\Seen"}]  # its audio was heard, then #


# ------------------------------------------------------------------ not heard, not seen


def test_a_key_during_one_moment_before_the_audio_marks_nothing(boxes):
    """The audio fetch is slow: a key (6) during "one moment please" moves on, the message
    whose audio never played stays new."""
    boxes.voicemail("alice", "c1")
    relay = Relay(boxes.dovecot.imap_port, b"BODYSTRUCTURE", hold=HOLD_S)
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(ONE_MOMENT, key="6"))), relay)
    assert relay.fired == 1 and phone.streams("^one-moment-please$")
    assert status(phone) == "MAILBOX_DONE"
    assert not phone.streams(r"/vm-\d+$")
    assert flags(boxes, "Voicemail") == [set()]


def test_a_key_during_cannot_be_played_marks_nothing(boxes):
    """An audio larger than max_audio_bytes cannot be played: a key during the apology
    goes to the next message, and the one never heard is not \\Seen."""
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(r"/phrases/cannot_play-en/", key="6"))),
                 max_audio_bytes=100)
    assert phone.streams(r"/phrases/cannot_play-en/")
    assert not phone.streams(r"/vm-\d+$")
    assert status(phone) == "MAILBOX_DONE"
    assert flags(boxes, "Voicemail") == [set(), set()]


def test_a_mail_whose_speech_failed_stays_unread(boxes):
    """The engine fails on a sentence of the body: "sorry" is said, the mail is not
    marked heard (it used to be \\Seen although the caller heard half of it)."""
    spoken = Spoken(fail="Zanzibar")
    boxes.runtime.pm.register(spoken, name="spoken")
    boxes.mail("alice", plain_mail("Plan", "First we meet. Then Zanzibar arrives. End."))
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="2"))))
    assert any("Zanzibar" in s for s in spoken.said), spoken.said
    assert phone.streams("^im-sorry$")
    assert status(phone) == "MAILBOX_DONE"
    assert flags(boxes, "INBOX") == [set()]


def test_without_a_speech_engine_a_mail_is_not_marked_heard(boxes):
    boxes.runtime.pm.unregister(name="speech")
    boxes.mail("alice", plain_mail("Plan", "First we meet."))
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="2"))))
    assert status(phone) == "MAILBOX_DONE"
    assert phone.streams("^im-sorry$")  # "cannot be played" in stock prompts
    assert flags(boxes, "INBOX") == [set()]


# ------------------------------------------------------------------ failed changes


def test_a_failed_delete_is_not_confirmed_and_the_message_stays(boxes):
    """The connection is cut on the MOVE: the caller hears the apology, never "message
    deleted"; the message is still in Voicemail, not in Trash, and still in the call's
    list (5 repeats it)."""
    boxes.voicemail("alice", "c1")
    relay = Relay(boxes.dovecot.imap_port, b" MOVE ", cut=True)
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),  # plays to its end
        Press(MENU_WAIT, key="7"),                 # delete: the MOVE is cut
        Press(MENU_WAIT, key="5"),                 # repeat: it is still there
        Press(AUDIO, key="#"),
    )), relay)
    assert relay.fired == 1
    assert phone.streams(r"/phrases/unavailable-en/")
    assert not phone.streams("^vm-deleted$"), phone.streams()
    assert len(phone.streams(r"/vm-\d+$")) == 2  # heard, then repeated after the failure
    assert len(boxes.folder("alice", "Voicemail")) == 1
    assert boxes.folder("alice", "Trash") == []


# ------------------------------------------------------------------ attachments


def pdf_mail(subject: str, body: str, language: str) -> EmailMessage:
    msg = plain_mail(subject, body, language=language)
    msg.add_attachment(b"%PDF-1.4\n%fake\n", maintype="application", subtype="pdf",
                       filename="offre.pdf")
    return msg


@pytest.mark.parametrize(("caller", "mail_language", "ours", "other"), [
    ("en", "en", "Attachment", "Pièce jointe"),
    ("en", "fr", "Attachment", "Pièce jointe"),
    ("fr", "en", "Pièce jointe", "Attachment"),
])
def test_an_attachment_is_announced_once_in_the_callers_language(
        dovecot_factory, caller, mail_language, ours, other):
    text = LIVE_POLICY.read_text()
    if caller == "fr":
        text = text.replace('numbers = ["+33140000201"]\n',
                            'numbers = ["+33140000201"]\nlanguage = "fr"\n', 1)
    boxes = start_mailboxes(dovecot_factory, text)
    try:
        spoken = Spoken()
        boxes.runtime.pm.register(spoken, name="spoken")
        body = "Voici notre offre." if mail_language == "fr" else "Here is our offer."
        boxes.mail("alice", pdf_mail("Offre", body, mail_language))
        phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="2"))))
        assert status(phone) == "MAILBOX_DONE"
        said = " ".join(spoken.said)
        assert body in said, spoken.said
        assert len(re.findall(ours, said)) == 1, spoken.said
        assert other not in said, spoken.said
        assert "offre.pdf" in said
    finally:
        cleanup(boxes)
