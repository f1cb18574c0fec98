"""The ``mailbox`` handler over the real AGI server, a real Dovecot and the real mail store.

The caller is a scripted fake Asterisk (tests/phonemenu/phone.py) that plays
only files that exist; the mailbox is a private Dovecot filled by mailcall's
own deposit path; the speech engine and the decoder are the real ones. Each
test checks what the caller heard (the commands), what the mailbox holds
afterwards (flags, folders, as a mail client sees them) and what the
lamp was told.
"""

from __future__ import annotations

import asyncio
import re

from mailcall.deposit.seal import deposit_key
from mailcall.speech import Speaker
from tests.agi.harness import serving

from .phone import Phone, Press, run_phone
from .support import PIN, cleanup, html_mail, plain_mail, start_mailboxes

AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
"""A voicemail's own audio, decoded into the call's folder."""
MENU_WAIT = r"WAIT FOR DIGIT"


def call(boxes, phone: Phone) -> Phone:
    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address)
    return asyncio.run(go())


def pin_then(*rules: Press) -> list[Press]:
    return [Press("GET DATA agent-pass", digits=PIN), *rules]


def status(phone: Phone) -> str | None:
    return phone.variables_set.get("MAILCALL_STATUS")


# ------------------------------------------------------------------ entry


def test_own_phone_asks_the_pin_only_and_says_the_counts(boxes):
    boxes.voicemail("alice", "c1")
    boxes.voicemail("alice", "c2")
    phone = call(boxes, Phone(pin_then()))
    assert phone.commands[0].startswith("SET VARIABLE CHANNEL(language)")
    assert not any("vm-login" in c for c in phone.commands)
    assert "digits:2" in phone.streams()  # "you have 2 new messages"
    assert phone.streams("^vm-onefor$"), phone.streams()
    assert status(phone) == "MAILBOX_DONE" and not phone.missing


def test_another_phone_types_the_mailbox_number_then_the_pin(boxes):
    boxes.voicemail("alice", "c1")
    phone = call(boxes, Phone([Press("GET DATA vm-login", digits="201"), *pin_then()],
                              callerid="+33699999999", calleridname="Hotel"))
    assert status(phone) == "MAILBOX_DONE", phone.commands
    assert "digits:1" in phone.streams()


def test_a_profile_without_mailbox_by_phone_is_refused_with_a_spoken_reason(boxes):
    phone = call(boxes, Phone(pin_then(), callerid="203", calleridname="Carole"))
    assert status(phone) == "NOT_ALLOWED"
    spoken = phone.streams(r"/phrases/not_allowed-en/")
    assert spoken and not phone.missing
    assert not any("vm-onefor" in c for c in phone.commands)


def test_wrong_pins_are_counted_with_the_greeting_menu(boxes):
    for _ in range(2):
        phone = call(boxes, Phone([Press("agent-pass", digits="1111")] * 3))
        assert status(phone) == "AUTH_FAILED"
    # 6 wrong PINs so far in two calls: the account was locked at the fifth
    assert boxes.runtime.pin_guard.locked_for("alice") > 0
    phone = call(boxes, Phone(pin_then()))
    assert status(phone) == "AUTH_FAILED"
    assert not any(c.startswith("GET DATA agent-pass") for c in phone.commands)


# ------------------------------------------------------------------ voicemail


def test_listen_delete_save_change_the_mailbox_like_a_mail_client(boxes):
    boxes.voicemail("alice", "c1", name="Premier")
    boxes.voicemail("alice", "c2", name="Second")
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),   # listen: the first plays to its end
        Press(MENU_WAIT, key="7"),                 # delete it; the second follows
        Press(AUDIO, key="#"),                     # skip during its audio (heard: seen)
        Press(MENU_WAIT, key="9"),                 # save it
    )))
    assert not phone.missing, phone.missing
    assert len(phone.streams(r"/vm-\d+$")) == 2
    voice = boxes.folder("alice", "Voicemail")
    trash = boxes.folder("alice", "Trash")
    assert len(voice) == 1 and "\\Seen" in voice[0][1]
    assert len(trash) == 1 and "\\Deleted" not in trash[0][1]
    reasons = [r for _u, _f, r in boxes.lamp.changes]
    assert reasons[:2] == ["heard", "deleted"] and "heard" in reasons[2:]
    assert all(u == "alice" and f == "Voicemail" for u, f, _r in boxes.lamp.changes)


def test_next_previous_repeat(boxes):
    for n in range(3):
        boxes.voicemail("alice", f"c{n}", name=f"Caller {n}")
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),
        Press(AUDIO, key="6"), Press(AUDIO, key="6"), Press(AUDIO, key="4"),
        Press(AUDIO, key="5"), Press(AUDIO, key="#"),
    )))
    audio = phone.streams(r"/vm-\d+$")
    assert len(audio) == 5
    assert audio[3] == audio[4] == audio[1]  # 4 came back to the second, 5 repeated it
    assert all("\\Seen" in flags for _uid, flags in boxes.folder("alice", "Voicemail"))


def test_hanging_up_during_the_envelope_marks_nothing(boxes):
    boxes.voicemail("alice", "c1")
    phone = call(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),
        Press(r"STREAM FILE \S*/call-\S*/", hangup=True),  # the envelope's first sentence
    )))
    assert status(phone) == "MAILBOX_DONE"
    assert [flags for _uid, flags in boxes.folder("alice", "Voicemail")] == [set()]
    assert boxes.lamp.changes == []


def test_a_missed_call_is_said_as_such_and_counts_as_heard(boxes):
    """A deposit without a recording (deposit/voice_message.py's missed call): after its
    envelope the caller hears that no message was left — not "cannot be played" — and it
    is \\Seen like any message heard, so it does not stay new for ever; 6 plays the next."""
    boxes.voicemail("alice", "c1", recording=None)  # a missed call: no audio part
    boxes.voicemail("alice", "c2")
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="1"),
                                       Press(MENU_WAIT, key="6"), Press(AUDIO, key="#"))))
    assert phone.streams(r"/phrases/missed_call-en/")
    assert not phone.streams(r"/phrases/cannot_play-en/")
    assert len(phone.streams(r"/vm-\d+$")) == 1
    flags = [f for _uid, f in boxes.folder("alice", "Voicemail")]
    assert flags == [{"\\Seen"}, {"\\Seen"}]  # the missed call, then the one heard


def test_envelope_names_a_colleague_from_the_policy_not_the_caller_name(boxes):
    """The envelope of a real summary from the store: the policy's name for extension 202,
    never the name the caller sent; an outside number grouped as France writes it."""
    from mailcall.mailstore import MailStore, MailstoreSettings
    from mailcall.phonemenu import words
    from mailcall.phonemenu.config import mailstore_settings

    boxes.voicemail("alice", "c1", caller="202", name="Spoofed Name")
    boxes.voicemail("alice", "c2", caller="+33612345678", name="Client")
    settings = mailstore_settings(MailstoreSettings, boxes.runtime.policy, boxes.phone_config())
    store = MailStore(settings, key=lambda: deposit_key(boxes.spool))

    async def go():
        async with store.session(boxes.email("alice")) as box:
            return await box.voice_messages()

    first, second = asyncio.run(go())
    now = boxes.runtime.now()
    said = " ".join(words.voice_envelope(boxes.runtime.policy, first, 0, 2, now, "en"))
    assert "From Bernard Petit." in said and "Spoofed" not in said, said
    assert said.startswith("New message 1 of 2.")
    said = " ".join(words.voice_envelope(boxes.runtime.policy, second, 1, 2, now, "fr"))
    assert "De 06 12 34 56 78." in said and "Message 2 sur 2, nouveau." in said, said


# ------------------------------------------------------------------ mail


def test_mail_is_read_newest_first_and_marked_seen_once_heard(boxes):
    boxes.mail("alice", plain_mail("Old news", "First mail body.", minutes_ago=60))
    boxes.mail("alice", html_mail("Offre", "<p>Bonjour Alice,</p><p>Voici notre offre.</p>",
                                  minutes_ago=1, language="fr"))
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="2"))))
    assert not phone.missing, phone.missing
    inbox = boxes.folder("alice", "INBOX")
    assert [("\\Seen" in f) for _uid, f in inbox] == [False, True]  # the newest was read


def test_mailbox_down_is_apologised_for_within_two_seconds_and_the_call_goes_on(boxes):
    boxes.dovecot.stop()
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="0"),
                                       Press(MENU_WAIT, key="*"))))
    pin_reply = next(t for t, line in phone.sent_at if "agent-pass" in line)
    apology = next(t for t, line in phone.sent_at if "/phrases/unavailable-" in line)
    assert apology - pin_reply < 2.0
    assert status(phone) == "MAILBOX_DONE"
    assert any("STREAM FILE vm-onefor" in c for c in phone.commands)  # the menu went on


# ------------------------------------------------------------------ prompts


def test_every_generated_phrase_exists_in_both_languages(boxes):
    from mailcall.agi import prompts

    speaker = Speaker.from_plugins(boxes.runtime.pm)

    async def go():
        made = {}
        for language in ("en", "fr"):
            for phrase, texts in prompts.MENU_TEXTS.items():
                folder = boxes.work / f"{phrase}-{language}"
                folder.mkdir()
                chunks = [c async for c in speaker.speak(
                    texts[language], language, folder)]
                made[(phrase, language)] = chunks
        return made

    made = asyncio.run(go())
    for key, chunks in made.items():
        assert chunks and all(c.path.stat().st_size > 0 for c in chunks), key



def test_wrong_mailbox_pins_lock_the_greeting_menu_too(boxes):
    """One guard per process for both PIN prompts: cycling menus buys no guesses."""
    for _ in range(2):
        call(boxes, Phone([Press("agent-pass", digits="1111")] * 3))
    greeting = call(boxes, Phone([Press("agent-pass", digits=PIN)], script="greeting"))
    assert greeting.variables_set.get("MAILCALL_STATUS") == "AUTH_FAILED"
    assert not any(c.startswith("GET DATA agent-pass") for c in greeting.commands)


def test_the_whole_menu_in_french_plays_only_prompts_that_exist(dovecot_factory):
    """Every menu, key and message kind once, for a French-speaking user: each stock prompt
    is in Debian's fr_CA_f_June set, each spoken phrase was made in French."""
    from .support import LIVE_POLICY

    text = LIVE_POLICY.read_text().replace(
        'numbers = ["+33140000201"]\n', 'numbers = ["+33140000201"]\nlanguage = "fr"\n', 1)
    boxes = start_mailboxes(dovecot_factory, text)
    try:
        boxes.voicemail("alice", "c1", caller="202")
        boxes.voicemail("alice", "c2", recording=None)
        boxes.mail("alice", html_mail("Offre", "<p>Bonjour,</p><p>Voici l'offre.</p>",
                                      language="fr"))
        phone = call(boxes, Phone(pin_then(
            Press("STREAM FILE vm-onefor", key="*"),       # help
            Press(MENU_WAIT, key="1"), Press(AUDIO, key="5"), Press(AUDIO, key="3"),
            Press(MENU_WAIT, key="3"),                     # envelope again
            Press(MENU_WAIT, key="6"),                     # a missed call: no audio
            Press(MENU_WAIT, key="0"), Press(MENU_WAIT, key="5"), Press(MENU_WAIT, key="*"),
            Press(MENU_WAIT, key="2"), Press(MENU_WAIT, key="8"),  # mail: no forward
            Press(MENU_WAIT, key="9"),
        )))
        assert phone.language == "fr"
        assert not phone.missing, phone.missing
        phrases = {re.search(r"/phrases/([a-z_]+-[a-z]+)/", n)[1]
                   for n in phone.streams(r"/phrases/")}
        assert phrases and all(p.endswith("-fr") for p in phrases), phrases
        assert {"help_main-fr", "missed_call-fr", "nothing_saved-fr",
                "not_for_mail-fr"} <= phrases
    finally:
        cleanup(boxes)


def test_a_huge_hostile_mail_is_read_as_bounded_text_and_the_call_goes_on(boxes):
    hostile = ("<html><body>" + "<p>Ligne \u202egnp.exe\u202c <b>gras</b> "
               "<script>alert(1)</script> \x07 https://example.org/" + "a" * 300 + "</p>\n"
               ) * 4000 + "</body></html>"
    assert len(hostile) > 1_000_000
    boxes.mail("alice", html_mail("Énorme", hostile, language="fr"))
    phone = call(boxes, Phone(pin_then(Press("STREAM FILE vm-onefor", key="2"),
                                       Press(r"STREAM FILE \S*/call-\S*-0005 ", key="#"),
                                       Press(MENU_WAIT, key="#"))))
    assert not phone.missing
    assert status(phone) == "MAILBOX_DONE"
    assert phone.streams("^vm-goodbye$"), "".join(phone.commands[-12:])
