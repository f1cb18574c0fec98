"""The phone's master user under contrib/dovecot/92-mailcall-phone.conf's ACLs, on a real Dovecot.

It can do what the menu needs (list, play, read, mark heard, delete to Trash) and
nothing else: no other folder, no expunge, no new or deleted folder, no mail injected.
The ACL lines are read from the contrib snippet itself, so the two cannot drift.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from mailcall.mailstore import MailboxUnavailable
from tests.mailstore.support import ALICE, MASTER, MASTER_PASSWORD, plain, start_phone_mail, voice
from tests.support import REPO

pytestmark = pytest.mark.dovecot

SNIPPET = REPO / "contrib" / "dovecot" / "92-mailcall-phone.conf"


def acl_lines() -> str:
    text = SNIPPET.read_text()
    block = text[text.index("# BEGIN mailcall.acl\n") + 21: text.index("# END mailcall.acl")]
    return "".join(line[2:] + "\n" for line in block.splitlines())


def _extra(acl: Path) -> str:
    return f"""
mail_plugins = $mail_plugins acl
plugin {{
  acl = vfile:{acl}
}}
namespace inbox {{
  inbox = yes
  mailbox Trash {{
    special_use = \\Trash
    auto = create
  }}
}}
"""


@contextlib.contextmanager
def _guarded(dovecot_factory, lines: str):
    # Not under pytest's tmp dir (0700): Dovecot's imap processes (uid 5000) read the file.
    folder = Path(tempfile.mkdtemp(prefix="mailcall-acl-"))
    os.chmod(folder, 0o755)  # noqa: S103
    acl = folder / "mailcall.acl"
    acl.write_text(lines)
    os.chmod(acl, 0o644)
    m = start_phone_mail(dovecot_factory, extra=_extra(acl))
    try:
        yield m
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(m.work, ignore_errors=True)


@pytest.fixture
def guarded(dovecot_factory):
    with _guarded(dovecot_factory, acl_lines()) as m:
        yield m


def _master(m) -> imaplib.IMAP4:
    conn = imaplib.IMAP4("127.0.0.1", m.dovecot.imap_port)
    conn.login(f'"{ALICE}*{MASTER}"', MASTER_PASSWORD)
    return conn


def test_snippet_lists_the_phone_rights():
    lines = acl_lines().splitlines()
    assert "INBOX user=mailcall-phone lrwst" in lines and "Trash user=mailcall-phone lis" in lines
    assert not any("mailcall-phone" in line and "e" in line.split()[-1] for line in lines)


async def test_the_menu_works_under_the_acl(guarded):
    m = guarded
    await m.deposit(voice("call.1"), voice("call.2", name="Carole"))
    m.deliver(plain("Hello", "Hello Alice, see you at ten."))
    async with m.store().session(ALICE) as box:
        first, second = await box.voice_messages()
        mime, data = await box.audio(first)
        assert mime == "audio/ogg" and data
        unread = await box.unread_mail()
        assert (await box.readable(unread.messages[0])).text == "Hello Alice, see you at ten."
        await box.mark_seen(first)
        await box.move_to_trash(second)  # MOVE refused (no "e"): COPY + \Deleted
        await box.move_to_trash(unread.messages[0])
        assert [s.message_id for s in await box.voice_messages()] == [first.message_id]
        assert (await box.unread_mail()).count == 0
    assert set(m.message_ids("Trash")) == {second.message_id, unread.messages[0].message_id}
    assert "\\Deleted" in m.flags("Voicemail", second.message_id)  # still there
    assert "\\Seen" in m.flags("Voicemail", first.message_id)


def test_the_master_user_can_do_nothing_else(guarded):
    m = guarded
    m.deliver(plain("Secret", "in the Sent folder"))
    owner = m.user_imap()
    owner.create('"Sent"')
    owner.select('"INBOX"')
    owner.uid("COPY", "1", '"Sent"')
    owner.uid("STORE", "1", "+FLAGS", "(\\Deleted)")  # flagged by the user, not expunged yet
    owner.logout()

    conn = _master(m)
    try:
        _typ, listed = conn.list('""', '"*"')
        names = b" ".join(listed)
        assert b"Sent" not in names  # not even listed
        assert conn.select('"Sent"')[0] == "NO"
        assert conn.create('"Evil"')[0] == "NO"
        assert conn.delete('"Trash"')[0] == "NO"
        assert conn.select('"Trash"')[0] == "NO"  # can put into Trash, not read it
        assert conn.select('"INBOX"')[0] == "OK"
        assert conn.append('"INBOX"', None, None, b"From: x@y\r\n\r\ninjected\r\n")[0] == "NO"
        assert conn.uid("MOVE", "1", '"Trash"')[0] == "NO"
        conn.expunge()
        assert conn.uid("FETCH", "1", "(FLAGS)")[1][0] is not None  # nothing expunged
    finally:
        conn.logout()
    owner = m.user_imap()  # the owner keeps every right
    try:
        assert owner.select('"Sent"')[0] == "OK"
        owner.select('"INBOX"')
        owner.expunge()
        assert owner.uid("SEARCH", "ALL")[1] == [b""]
    finally:
        owner.logout()


async def test_a_reply_leaves_the_original_answered_under_the_acl(guarded):
    """The contrib ACL's "w" on INBOX and Voicemail: \\Answered is kept, on both folders."""
    m = guarded
    await m.deposit(voice("call.a"))
    m.deliver(plain("Devis", "Can you call me back?"))
    async with m.store().session(ALICE) as box:
        (heard,) = await box.voice_messages()
        (mail,) = (await box.unread_mail()).messages
        assert await box.mark_answered(heard) is True
        assert await box.mark_answered(mail) is True
    assert "\\Answered" in m.flags("Voicemail", heard.message_id)
    assert "\\Answered" in m.flags("INBOX", mail.message_id)
    assert "\\Seen" not in m.flags("INBOX", mail.message_id)  # a reply does not read it


async def test_an_acl_without_w_logs_what_to_add_and_the_session_goes_on(dovecot_factory,
                                                                        caplog):
    """An older ACL (lrst): Dovecot answers OK and drops the flag. mark_answered says so
    (False), one warning names the right and the file, and the session stays usable."""
    old = acl_lines().replace(" lrwst\n", " lrst\n")
    assert "mailcall-phone lrwst" not in old
    with _guarded(dovecot_factory, old) as m:
        m.deliver(plain("Devis", "Can you call me back?"))
        async with m.store().session(ALICE) as box:
            (mail,) = (await box.unread_mail()).messages
            with caplog.at_level(logging.WARNING, logger="mailcall.mailstore"):
                assert await box.mark_answered(mail) is False
            await box.mark_seen(mail)  # not closed by the refusal
        assert m.flags("INBOX", mail.message_id) == {"\\Seen"}
    [line] = [r.getMessage() for r in caplog.records if "Answered" in r.getMessage()]
    assert '"w"' in line and "/etc/dovecot/mailcall.acl" in line
    assert "92-mailcall-phone.conf" in line and "the reply was sent" in line


async def test_a_delete_cut_after_the_copy_is_not_copied_twice_under_the_acl(guarded):
    """Under the contrib ACL (MOVE refused: no "e"; Trash not readable: no "r") the
    connection is broken after the COPY to Trash was answered and before \\Deleted. The
    session fails and is closed; the menu's retry, on the next session of the same store,
    does not COPY again (the store's memo), and Trash holds one copy."""
    m = guarded
    await m.deposit(voice("call.cut"))
    store = m.store()
    async with store.session(ALICE) as box:
        (message,) = await box.voice_messages()
        inner = box._box
        real_uid = inner.conn.uid
        copied: list[str] = []

        def cut_after_copy(command, *args):
            if command == "COPY":
                copied.append(real_uid(command, *args)[0])
                return copied[-1], [b"done"]
            if command == "STORE" and "Deleted" in args[-1]:
                inner.abort()  # the connection goes down under the STORE
            return real_uid(command, *args)

        inner.conn.uid = cut_after_copy
        with pytest.raises(MailboxUnavailable):
            await box.move_to_trash(message)
    assert copied == ["OK"]
    assert m.message_ids("Trash") == [message.message_id]  # half done: in both
    assert "\\Deleted" not in m.flags("Voicemail", message.message_id)
    async with store.session(ALICE) as box:  # the menu's next session
        (again,) = await box.voice_messages()
        await box.move_to_trash(again)
        assert await box.voice_messages() == []
    assert m.message_ids("Trash") == [message.message_id]  # one copy, not two
    assert "\\Deleted" in m.flags("Voicemail", message.message_id)
