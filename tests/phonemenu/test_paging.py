"""A folder longer than one page (max_listed): 6 goes on into the next page, on the real
Dovecot through the real AGI server, with the scripted caller of phone.py.

The mail store lists max_listed messages at a time; the menu asks for the next page a
few messages before the end (in the background) and waits for it when 6 goes past the
end. Before this, a caller with more than max_listed voicemails heard only the first
page and "no more messages".
"""

from __future__ import annotations

import asyncio

import pytest

from tests.agi.harness import serving

from .phone import Phone, Press, run_phone
from .support import PIN, cleanup, plain_mail, start_mailboxes

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
