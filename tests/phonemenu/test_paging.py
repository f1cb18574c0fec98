"""A folder longer than one page (max_listed): 6 goes on into the next page, on the real
Dovecot through the real AGI server, with the scripted caller of phone.py.

The mail store lists max_listed messages at a time; the menu asks for the next page a
few messages before the end (in the background) and waits for it when 6 goes past the
end. Before this, a caller with more than max_listed voicemails heard only the first
page and "no more messages".
"""

from __future__ import annotations

import asyncio
import re

import pytest

from mailcall.mailstore.mailbox import Mailbox as StoreMailbox
from mailcall.phonemenu import words
from tests.agi.harness import serving
from tests.mailstore.support import forged_voice

from .phone import Phone, Press, run_phone
from .support import PIN, cleanup, plain_mail, start_mailboxes
from .test_flags_and_faults import Relay, flags, pin_then
from .test_flags_and_faults import call as relayed

AUDIO = r"STREAM FILE \S*/call-\S*/vm-\d+ "
MENU_WAIT = r"WAIT FOR DIGIT"
PAGE = 2


@pytest.fixture
def boxes(dovecot_factory):
    made = start_mailboxes(dovecot_factory)
    config = made.phone_config()
    config.write_text(config.read_text() + f"max_listed = {PAGE}\n")
    yield made
    cleanup(made)


def call(boxes, *rules: Press) -> Phone:
    phone = Phone([Press("GET DATA agent-pass", digits=PIN), *rules])

    async def go():
        async with serving(boxes.runtime) as server:
            return await run_phone(phone, *server.address, timeout=20)
    return asyncio.run(go())


def test_next_goes_on_page_after_page_to_the_last_voicemail(boxes):
    total = 2 * PAGE + 1
    for n in range(total):
        boxes.voicemail("alice", f"c{n}", name=f"Caller {n}")
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="1"),
                 *(Press(AUDIO, key="6") for _ in range(total)),  # the last 6: no more
                 Press(MENU_WAIT, key="4"), Press(AUDIO, key="#"))
    assert not phone.missing, phone.missing
    assert not phone.rules, phone.rules
    audio = phone.streams(r"/vm-\d+$")
    assert len(audio) == total + 1 and len(set(audio[:total])) == total, audio
    assert audio[-1] == audio[total - 2]  # 4 after the end: back to the one before the last
    assert phone.streams("^vm-nomore$") == ["vm-nomore"]  # once, past the very last
    flags = [f for _uid, f in boxes.folder("alice", "Voicemail")]
    assert len(flags) == total and all("\\Seen" in f for f in flags), flags


def test_the_unread_mail_goes_on_into_older_pages(boxes):
    total = 2 * PAGE + 1
    for n in range(total):
        boxes.mail("alice", plain_mail(f"Mail {n}", f"Text {n}."))
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="2"),
                 *(Press(r"STREAM FILE \S*/call-\S*/", key="6") for _ in range(total - 1)),
                 Press(r"STREAM FILE \S*/call-\S*/", key="9"),  # the last: saved
                 Press(MENU_WAIT, key="#"))
    assert not phone.missing, phone.missing
    assert not phone.rules, phone.rules
    flags = [f for _uid, f in boxes.folder("alice", "INBOX")]
    # 6 during each envelope marks nothing; 9 on the oldest mail (the third page) saves it.
    assert ["\\Seen" in f for f in flags] == [True] + [False] * (total - 1), flags
    assert phone.streams("^vm-nomore$") == ["vm-nomore"]


# ------------------------------------------------------------------ defects of the paging

ENVELOPE = r"STREAM FILE \S*/call-\S*/[0-9a-f]{12}-0001 "
"""The first sentence of an envelope, spoken into the call's folder."""
ONE_MOMENT = r"STREAM FILE one-moment-please "
PAGE_TWO = b"UID FETCH 3 (UID FLAGS"
"""The second page's listing of three voicemails (UIDs 1, 2 on the first page)."""


class Counted(Relay):
    """The relay of test_flags_and_faults.py, with the IMAP connections open at once."""

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.open = 0
        self.most = 0
        self.connections = 0

    async def _client(self, reader, writer) -> None:
        self.open += 1
        self.connections += 1
        self.most = max(self.most, self.open)
        try:
            await super()._client(reader, writer)
        finally:
            self.open -= 1


def uids(boxes, folder: str) -> list[int]:
    return [uid for uid, _f in boxes.folder("alice", folder)]


def test_a_key_during_the_page_wait_acts_on_the_message_announced_not_the_next(boxes):
    """The second page is slow; 6 past the end, "one moment please", the caller presses 7:
    it deletes the message whose envelope they heard, never the page's first one, which
    was not announced (the old loop presented that one and fed 7 to it: it went to
    Trash unheard)."""
    for n in range(3):
        boxes.voicemail("alice", f"c{n}", name=f"Caller {n}")
    relay = Relay(boxes.dovecot.imap_port, PAGE_TWO, hold=2.5)
    phone = relayed(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),
        Press(ENVELOPE, key="6"),             # first message: next
        Press(ENVELOPE, key="6"),             # second, the last listed: the page is waited
        Press(ONE_MOMENT, key="7"),           # ...and cut: 7 is for the second message
        Press("STREAM FILE vm-deleted", hangup=True))), relay, max_listed=PAGE)
    assert relay.fired == 1 and not phone.rules, phone.commands
    assert uids(boxes, "Voicemail") == [1, 3]  # the old code trashed 3, never announced
    assert len(uids(boxes, "Trash")) == 1
    assert flags(boxes, "Voicemail") == [set(), set()]  # no audio was reached


def test_a_page_fetch_that_failed_drops_its_own_session_not_a_later_one(boxes):
    """The background fetch of the second page is cut with its connection; the call goes
    on, on a new session. When 6 reaches the end, that old failure is said (and 6 asks
    again) but the healthy session stays the call's: one connection at a time, two in all.
    The old code dropped the new session there without closing it and opened a third."""
    for n in range(3):
        boxes.voicemail("alice", f"c{n}", name=f"Caller {n}")
    relay = Counted(boxes.dovecot.imap_port, PAGE_TWO, cut=True)
    phone = relayed(boxes, Phone(pin_then(
        Press("STREAM FILE vm-onefor", key="1"),
        Press(AUDIO, key="6"),
        Press(AUDIO, key="6"),                # past the end: the old failure, apologised
        Press(MENU_WAIT, key="6"),            # asked again, on the healthy session
        Press(AUDIO, key="#"))), relay, max_listed=PAGE)
    assert relay.fired == 1 and not phone.rules, phone.commands
    assert phone.streams(r"/phrases/unavailable-en/")
    assert relay.most == 1, (relay.most, relay.connections)
    assert relay.connections == 2, relay.connections
    assert len(phone.streams(r"/vm-\d+$")) >= 2  # the third message was reached


def test_a_forged_voicemail_of_the_first_page_is_not_examined_again(boxes, monkeypatch):
    """A candidate refused on the first page (no valid seal) is not fetched again for the
    second: the pager starts from the first listing's examined UIDs."""
    fetched: list[list[int]] = []
    real = StoreMailbox._list_entries

    def counted(self, folder, uidvalidity, uids, key):
        if folder == "Voicemail":
            fetched.append(list(uids))
        return real(self, folder, uidvalidity, uids, key)

    monkeypatch.setattr(StoreMailbox, "_list_entries", counted)
    boxes.mail("alice", forged_voice())  # UID 1, filed into Voicemail by the Sieve rule
    for n in range(4):
        boxes.voicemail("alice", f"c{n}", name=f"Caller {n}")
    assert len(uids(boxes, "Voicemail")) == 5
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="1"),
                 Press(AUDIO, key="6"), Press(AUDIO, key="6"),  # into the second page
                 Press(AUDIO, key="#"))
    assert not phone.rules, phone.commands
    assert len(fetched) >= 3, fetched  # page 1 in two chunks, then page 2
    assert sum(page.count(1) for page in fetched) == 1, fetched


def test_the_total_is_said_only_once_the_last_page_is_in(boxes, monkeypatch):
    """"Message N of T" only once the listing is whole (after its last page); before,
    "Message N" alone: a page's length is never said as the folder's total."""
    made: list[str] = []
    real = words.voice_envelope

    def recorded(*args, **kw):
        out = real(*args, **kw)
        made.append(out[0])
        return out

    monkeypatch.setattr(words, "voice_envelope", recorded)
    total = 2 * PAGE + 1
    for n in range(total):
        boxes.voicemail("alice", f"c{n}", name=f"Caller {n}")
    phone = call(boxes, Press("STREAM FILE vm-onefor", key="1"),
                 *(Press(AUDIO, key="6") for _ in range(total - 1)),  # to the last
                 Press(AUDIO, key="4"),                               # back one
                 Press(AUDIO, key="#"))
    assert not phone.rules, phone.commands
    said = [re.fullmatch(r"New message (\d+)(?: of (\d+))?\.", s) for s in made]
    assert all(said), made
    numbers = [(int(m[1]), m[2] and int(m[2])) for m in said]
    first_exact = next(i for i, (_n, t) in enumerate(numbers) if t)
    assert all(t in (None, total) for _n, t in numbers), made  # never a page's length
    assert all(t == total for _n, t in numbers[first_exact:]), made  # exact from then on
    assert {n for n, _t in numbers[:first_exact]} == set(range(1, total)), made
    # the last message with its total; then 4 says the one before it with the total too
    # (envelopes are also made a message ahead, so the order is not strictly the heard one)
    last = numbers.index((total, total))
    assert (total - 1, total) in numbers[last:], made
