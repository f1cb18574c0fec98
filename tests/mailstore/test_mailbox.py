"""MailStore against a real Dovecot filled by mailcall's spool and by mail of several shapes."""

from __future__ import annotations

import email
import email.policy
import time
from datetime import UTC, datetime

import pytest

from mailcall.mailstore import MailboxUnavailable, MessageUnreadable
from mailcall.mailstore.readable import MAX_CHARS
from tests.mailstore.support import (
    ALICE,
    BOB,
    fax,
    forged_voice,
    html,
    plain,
    raw_hostile,
    voice,
    with_attachments,
)

pytestmark = pytest.mark.dovecot


def _parse(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def _by_id(raws: list[bytes]) -> dict[str, object]:
    return {str(_parse(r)["Message-ID"]): _parse(r) for r in raws}


async def test_voicemail_order_fields_and_only_sealed(phone_mail):
    m = phone_mail
    await m.deposit(voice("call.1", name="Bernard Petit"),
              voice("call.2", name="Carole Dumas", number="+33611111111"),
              voice("call.3", name="", number="201"))
    await m.deposit(voice("call.4", name="Wav Caller"), formats=("wav",))
    await m.deposit(voice("call.bob", mailbox="bob"))  # sealed for Bob...
    bob_copy = m.dovecot.fetch_all(BOB, "Voicemail")[0]
    m.append("Voicemail", bob_copy)              # ...copied into Alice's folder: not hers
    m.deliver(forged_voice())                    # filed into Voicemail by the naive filter
    ids = {str(_parse(r)["Subject"]): str(_parse(r)["Message-ID"])
           for r in m.dovecot.fetch_all(ALICE, "Voicemail")}
    carole = next(v for k, v in ids.items() if "Carole" in k)
    wav = next(v for k, v in ids.items() if "Wav" in k)
    m.set_flag("Voicemail", carole, "\\Seen")
    m.set_flag("Voicemail", wav, "\\Deleted")

    async with m.store().session(ALICE) as box:
        got = await box.voice_messages()
    assert [s.caller_name for s in got] == ["Bernard Petit", None, "Carole Dumas"]
    first, internal, seen = got
    assert seen.subject.startswith("Message vocal de Carole Dumas")
    assert [s.seen for s in got] == [False, False, True]
    assert first.kind == "voice" and first.folder == "Voicemail"
    assert first.caller_number == "+33698765432"
    assert internal.caller_number == "201"
    assert first.subject.startswith("Message vocal de Bernard Petit")
    assert first.sender_name == "Bernard Petit"
    assert first.date == datetime(2026, 11, 27, 16, 42, 5, tzinfo=UTC)
    assert first.date.tzinfo is not None and first.received.tzinfo is not None
    raw = _by_id(m.dovecot.fetch_all(ALICE, "Voicemail"))[first.message_id]
    audio = next(p for p in raw.iter_attachments() if p.get_content_maintype() == "audio")
    assert first.duration == float(audio["Content-Duration"])
    assert first.message_id.startswith("<voice.call.1.") and first.references == ()
    assert first.language is None


async def test_audio_is_the_attachment_and_never_sets_seen(phone_mail):
    m = phone_mail
    await m.deposit(voice("call.opus"))
    await m.deposit(voice("call.wav", name="Wav Caller"), formats=("wav",))
    async with m.store().session(ALICE) as box:
        listed = await box.voice_messages()
        fetched = {s.caller_name: await box.audio(s) for s in listed}
        readable = await box.readable(listed[0])
    raws = _by_id(m.dovecot.fetch_all(ALICE, "Voicemail"))
    for summary in listed:
        part = next(p for p in raws[summary.message_id].iter_attachments()
                    if p.get_content_maintype() == "audio")
        mime, data = fetched[summary.caller_name]
        assert mime == part.get_content_type() and data == part.get_content()
        assert "\\Seen" not in m.flags("Voicemail", summary.message_id)
    assert fetched["Bernard Petit"][0] == "audio/ogg"
    assert fetched["Wav Caller"][0] == "audio/wav"
    assert readable.text.startswith("Message vocal de Bernard Petit.")


async def test_missed_call_deposit_is_voice_without_audio(phone_mail):
    m = phone_mail
    await m.deposit(voice("call.missed", name="Élodie À-Côté", recording=""))
    async with m.store().session(ALICE) as box:
        (missed,) = await box.voice_messages()
        assert missed.kind == "voice" and missed.duration is None
        assert (missed.caller_name, missed.caller_number) == ("Élodie À-Côté", "+33698765432")
        assert missed.subject.startswith("Appel manqué de Élodie")
        with pytest.raises(MessageUnreadable):
            await box.audio(missed)  # "this message cannot be played", the call goes on
        assert (await box.readable(missed)).text == "Message vocal de Élodie À-Côté."


async def test_unread_mail_newest_first_with_count_and_kinds(phone_mail):
    m = phone_mail
    first = plain("Réunion lundi", "Bonjour Alice,\nla réunion est déplacée à lundi.\n")
    m.deliver(first)
    time.sleep(1.1)  # INTERNALDATE has one-second steps
    await m.deposit(fax("fax.1"))  # not filed into Voicemail: a sealed fax in the INBOX
    time.sleep(1.1)
    read = plain("Already read", "x")
    m.deliver(read)
    m.set_flag("INBOX", str(read["Message-ID"]), "\\Seen")
    deleted = plain("Deleted", "x")
    m.deliver(deleted)
    m.set_flag("INBOX", str(deleted["Message-ID"]), "\\Deleted")
    claims = forged_voice()
    m.append("INBOX", bytes(claims))  # claims to be voice, in the INBOX: it is mail
    time.sleep(1.1)
    last = html("Newsletter", "<p>Hello <b>Alice</b></p>", language="en")
    m.deliver(last)

    async with m.store().session(ALICE) as box:
        unread = await box.unread_mail()
    assert unread.count == 4
    assert unread.messages[0].subject == "Newsletter"
    assert unread.messages[-1].subject == "Réunion lundi"
    kinds = {s.subject: s.kind for s in unread.messages}
    assert kinds["Newsletter"] == "mail"
    assert kinds[str(claims["Subject"])] == "mail"
    fax_summary = next(s for s in unread.messages if s.kind == "fax")
    assert fax_summary.caller_number == "+33140000299"
    assert fax_summary.caller_name == "Compta Stock Inox"
    news = unread.messages[0]
    assert news.language == "en" and news.sender_address == "bernard@outside.test"
    assert news.sender_name == "Bernard Petit"
    received = [s.received for s in unread.messages]
    assert received == sorted(received, reverse=True)


async def test_readable_shapes(phone_mail):
    m = phone_mail
    fr = plain("Planning", "Bonjour Alice,\n\nVoici le planning de la semaine.\n\nCordialement,\n"
               "Bernard\n-- \nBernard Petit\nTél. 01 40 00 02 99\n\nLe 27 nov. 2026 à 17:42, "
               "Alice a écrit :\n> Peux-tu m'envoyer le planning ?\n")
    en = html("Report", "<html><body><p>Hi Alice,</p><p>The report is <b>ready</b>.</p>"
              "<script>steal()</script><div class='gmail_quote'>On Fri, Alice wrote: old"
              "</div></body></html>", language="en-GB")
    alt = html("Both", "<p>Version <i>HTML</i></p>", text="Version texte, merci pour tout.")
    files = with_attachments(
        "Documents", "Please find the documents attached, thanks.",
        [("rapport annuel.pdf", "application/pdf", b"%PDF-1.4 fake"),
         ("photo.jpg", "image/jpeg", b"\xff\xd8\xff fake"),
         ("budget.xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          b"PK fake")])
    for msg in (fr, en, alt, files):
        m.deliver(msg)
    await m.deposit(fax("fax.2"))
    async with m.store().session(ALICE) as box:
        unread = {s.subject: s for s in (await box.unread_mail()).messages}
        texts = {k: await box.readable(s) for k, s in unread.items()}
        fax_text = await box.readable(next(s for s in unread.values() if s.kind == "fax"),
                                      language="fr")
    assert texts["Planning"].text == ("Bonjour Alice,\n\nVoici le planning de la semaine.\n\n"
                                      "Cordialement,\nBernard")
    assert texts["Planning"].language == "fr"
    report = texts["Report"]
    assert report.language == "en"
    assert " ".join(report.text.split()) == "Hi Alice, The report is ready."
    assert texts["Both"].text == "Version texte, merci pour tout."
    docs = texts["Documents"]
    assert [a.name for a in docs.attachments] == ["rapport annuel.pdf", "photo.jpg",
                                                  "budget.xlsx"]
    assert docs.text.splitlines() == [
        "Please find the documents attached, thanks.",
        "Attachment: rapport annuel.pdf, PDF document.", "Attachment: photo.jpg, image.",
        "Attachment: budget.xlsx, spreadsheet."]
    assert fax_text.text == "Télécopie de Compta Stock Inox."
    for s in unread.values():  # reading never marks a message read
        assert "\\Seen" not in m.flags("INBOX", s.message_id)


async def test_hostile_mail_is_read_as_bounded_clean_text(phone_mail):
    m = phone_mail
    hostile = raw_hostile()
    huge = plain("Huge", ("Une ligne de texte assez longue pour remplir. " * 20 + "\n") * 1100)
    rows = "\n".join(f"<tr><td>ligne {i}</td><td><b>{i}</b></td></tr>" for i in range(10_000))
    big_html = html("Big HTML", f"<html><body><table>{rows}</table></body></html>")
    nested = html("Nested", "<div>" * 50_000 + "profond" + "</div>" * 50_000)
    for msg in (hostile, huge, big_html, nested):
        m.deliver(msg)
    assert len(bytes(huge)) > 1_000_000
    async with m.store().session(ALICE) as box:
        unread = {s.subject.split()[0]: s for s in (await box.unread_mail()).messages}
        evil = unread["Urgent"]
        assert "\r" not in evil.subject and "\n" not in evil.subject
        assert "\u202e" not in evil.subject and "Bcc: evil@x.test" in evil.subject
        assert evil.sender_name == "Evil Name" and evil.sender_address == "evil@outside.test"
        text = (await box.readable(evil)).text
        assert not any(c in text for c in "\u202e\x1b\x07\r")
        assert "<speak><break time='60s'/><audio src='http://evil.test/x.wav'/>" in text
        for name in ("Huge", "Big", "Nested"):
            start = time.perf_counter()
            out = await box.readable(unread[name])  # within the 1.5 s operation timeout
            elapsed = time.perf_counter() - start
            assert len(out.text) <= MAX_CHARS, name
            assert elapsed < 1.5, (name, elapsed)
        assert (await box.readable(unread["Huge"])).truncated
        assert (await box.readable(unread["Big"])).text.startswith("ligne 0 0")


async def test_mark_seen_unseen_and_move_to_trash(phone_mail):
    m = phone_mail
    await m.deposit(voice("call.a"), voice("call.b", name="Carole"))
    mail = plain("To delete", "x")
    m.deliver(mail)
    async with m.store().session(ALICE) as box:
        a, b = await box.voice_messages()
        await box.mark_seen(a)
        assert "\\Seen" in m.flags("Voicemail", a.message_id)
        assert [s.caller_name for s in await box.voice_messages()] == ["Carole",
                                                                       "Bernard Petit"]
        await box.mark_unseen(a)
        assert "\\Seen" not in m.flags("Voicemail", a.message_id)
        await box.mark_seen(b)
        await box.move_to_trash(b)
        assert [s.message_id for s in await box.voice_messages()] == [a.message_id]
        with pytest.raises(MessageUnreadable):
            await box.audio(b)  # gone from Voicemail: "cannot be played", the call goes on
        inbox = (await box.unread_mail()).messages[0]
        await box.move_to_trash(inbox)
        assert (await box.unread_mail()).count == 0
    assert m.message_ids("Voicemail") == [a.message_id]  # moved, nothing else touched
    assert set(m.message_ids("Trash")) == {b.message_id, str(mail["Message-ID"])}
    assert "\\Seen" in m.flags("Trash", b.message_id)  # kept its flags, undo-able there
    assert "\\Deleted" not in m.flags("Trash", b.message_id)


# Dovecot's post-login capabilities, MOVE left out: what a server without RFC 6851 offers.
NO_MOVE = ("imap_capability = IMAP4rev1 LITERAL+ SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT "
           "THREAD=REFERENCES MULTIAPPEND UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
           "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS "
           "BINARY SPECIAL-USE\n")


NO_MOVE_NO_UIDPLUS = NO_MOVE.replace(" UIDPLUS", "")


async def test_without_move_or_uidplus_copy_then_deleted_never_expunged(dovecot_factory):
    from tests.mailstore.support import start_phone_mail

    m = start_phone_mail(dovecot_factory, extra=NO_MOVE_NO_UIDPLUS)
    await m.deposit(voice("call.c"))
    async with m.store().session(ALICE) as box:
        assert "MOVE" not in box._box.capabilities
        assert "UIDPLUS" not in box._box.capabilities
        (message,) = await box.voice_messages()
        await box.move_to_trash(message)
        assert await box.voice_messages() == []  # \Deleted: no longer listed
    assert m.message_ids("Trash") == [message.message_id]
    assert m.message_ids("Voicemail") == [message.message_id]  # still there, not expunged
    assert "\\Deleted" in m.flags("Voicemail", message.message_id)


async def test_without_move_only_that_one_uid_is_expunged(dovecot_factory):
    """With UIDPLUS, the original is expunged by UID (what MOVE does), and nothing else: a
    message the user's own client flagged \\Deleted in the same folder stays there (a
    plain EXPUNGE would have taken it)."""
    from tests.mailstore.support import start_phone_mail

    m = start_phone_mail(dovecot_factory, extra=NO_MOVE)
    await m.deposit(voice("call.c1"), voice("call.c2"))
    async with m.store().session(ALICE) as box:
        assert "MOVE" not in box._box.capabilities and "UIDPLUS" in box._box.capabilities
        first, second = await box.voice_messages()
        m.set_flag("Voicemail", second.message_id, "\\Deleted")  # the user's client did
        await box.move_to_trash(first)
    assert m.message_ids("Trash") == [first.message_id]
    assert m.message_ids("Voicemail") == [second.message_id]
    assert "\\Deleted" in m.flags("Voicemail", second.message_id)


class _Dropped(OSError):
    pass


@pytest.mark.parametrize("extra", [NO_MOVE, NO_MOVE_NO_UIDPLUS], ids=["uidplus", "plain"])
async def test_a_delete_cut_between_copy_and_flag_is_not_copied_twice(dovecot_factory, extra):
    """The connection drops after the COPY to Trash and before \\Deleted (a hang-up, the
    network): the message is in both folders. After a restart (a new store: no memo), with
    Trash readable (no ACL here), the retry finds the copy by Message-ID and size and does
    not copy it again."""
    from tests.mailstore.support import start_phone_mail

    m = start_phone_mail(dovecot_factory, extra=extra)
    await m.deposit(voice("call.k1"), voice("call.k2"))
    store = m.store()
    async with store.session(ALICE) as box:
        message, other = await box.voice_messages()
        conn = box._box.conn
        real_uid = conn.uid

        def drop_before_flag(command, *args):
            if command == "STORE" and "Deleted" in args[-1]:
                raise _Dropped("connection reset by peer")
            return real_uid(command, *args)

        conn.uid = drop_before_flag
        with pytest.raises(MailboxUnavailable):
            await box.move_to_trash(message)
    assert m.message_ids("Trash") == [message.message_id]  # half done: in both
    assert message.message_id in m.message_ids("Voicemail")
    async with m.store().session(ALICE) as box:  # after a restart: a new store, no memo
        again, _ = await box.voice_messages()
        assert again.message_id == message.message_id
        await box.move_to_trash(again)
        await box.move_to_trash(other)
        assert [v.message_id for v in await box.voice_messages()] == []
    assert sorted(m.message_ids("Trash")) == sorted([message.message_id, other.message_id])
    assert "\\Deleted" not in m.flags("Trash", message.message_id)


async def test_a_retry_after_the_session_failed_uses_the_copy_it_made(dovecot_factory):
    """COPY answered, the \\Deleted refused once: the session fails (closed, as every
    MailboxUnavailable closes it), and the retry, on the next session of the same store,
    flags the original without a second COPY (the store's memo of that copy)."""
    from tests.mailstore.support import start_phone_mail

    m = start_phone_mail(dovecot_factory, extra=NO_MOVE)
    await m.deposit(voice("call.r1"))
    store = m.store()
    sent: list[str] = []

    def spy_on(box, refuse: bool):
        real_uid = box._box.conn.uid
        refused = [True] if refuse else []

        def spy(command, *args):
            sent.append(command)
            if command == "STORE" and "Deleted" in args[-1] and refused:
                refused.pop()
                return "NO", [b"[SERVERBUG] try again"]
            return real_uid(command, *args)
        box._box.conn.uid = spy

    async with store.session(ALICE) as box:
        (message,) = await box.voice_messages()
        spy_on(box, refuse=True)
        with pytest.raises(MailboxUnavailable):
            await box.move_to_trash(message)
        assert sent.count("COPY") == 1 and len(store.trash_copies) == 1
        with pytest.raises(MailboxUnavailable, match="closed"):
            await box.move_to_trash(message)  # the failed session is closed
    async with store.session(ALICE) as box:
        (again,) = await box.voice_messages()
        spy_on(box, refuse=False)
        await box.move_to_trash(again)
    assert sent.count("COPY") == 1, sent
    assert sent[-1] == "EXPUNGE"
    assert len(store.trash_copies) == 0  # flagged: forgotten
    assert m.message_ids("Trash") == [message.message_id]
    assert m.message_ids("Voicemail") == []


def test_the_trash_copies_memo_is_bounded_oldest_first():
    from mailcall.mailstore.trash_copies import TrashCopies

    memo = TrashCopies(limit=3)
    for uid in range(1, 5):
        memo.remember(("alice", "Voicemail", 7, uid), 100 + uid)
    assert len(memo) == 3
    assert ("alice", "Voicemail", 7, 1) not in memo  # the oldest dropped
    assert memo.get(("alice", "Voicemail", 7, 4)) == 104
    assert ("bob", "Voicemail", 7, 4) not in memo  # per login
    assert ("alice", "Voicemail", 8, 4) not in memo  # per UIDVALIDITY
    memo.forget(("alice", "Voicemail", 7, 4))
    assert len(memo) == 2


SPECIAL_TRASH = """
namespace inbox {
  inbox = yes
  separator = /
  mailbox "Éléments supprimés" {
    special_use = \\Trash
    auto = create
  }
}
"""


async def test_trash_found_by_special_use(dovecot_factory):
    from tests.mailstore.support import start_phone_mail

    m = start_phone_mail(dovecot_factory, extra=SPECIAL_TRASH)
    await m.deposit(voice("call.d"))
    async with m.store().session(ALICE) as box:
        (message,) = await box.voice_messages()
        await box.move_to_trash(message)
    assert m.message_ids("Éléments supprimés") == [message.message_id]
    assert "Trash" not in m.folders()


async def test_trash_created_when_missing_and_deleting_in_trash_keeps_it(phone_mail):
    m = phone_mail
    assert "Trash" not in m.folders()
    await m.deposit(voice("call.e"))
    async with m.store().session(ALICE) as box:
        (message,) = await box.voice_messages()
        await box.move_to_trash(message)
    assert "Trash" in m.folders()
    assert m.message_ids("Trash") == [message.message_id]


async def test_action_on_a_message_gone_meanwhile(phone_mail):
    m = phone_mail
    await m.deposit(voice("call.f"))
    async with m.store().session(ALICE) as box:
        (message,) = await box.voice_messages()
        conn = m.user_imap()  # the user's mail client expunges it meanwhile
        conn.select('"Voicemail"')
        conn.uid("STORE", str(message.uid), "+FLAGS", "(\\Deleted)")
        conn.expunge()
        conn.logout()
        for action in (box.mark_seen, box.move_to_trash, box.audio, box.readable):
            with pytest.raises(MessageUnreadable):
                await action(message)
        assert await box.voice_messages() == []  # the session is still usable


async def test_one_connection_per_call_reused(phone_mail):
    m = phone_mail
    await m.deposit(voice("call.g"))
    m.deliver(plain("Hello", "Hello Alice"))
    logins = m.dovecot.log_text().count(f"Login: user=<{ALICE}>")
    async with m.store().session(ALICE) as box:
        for _ in range(3):
            (message,) = await box.voice_messages()
            await box.audio(message)
            await box.readable((await box.unread_mail()).messages[0])
            await box.mark_seen(message)
    deadline = time.monotonic() + 5
    while m.dovecot.log_text().count(f"Login: user=<{ALICE}>") == logins \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert m.dovecot.log_text().count(f"Login: user=<{ALICE}>") == logins + 1


async def test_connection_bound(phone_mail):
    m = phone_mail
    store = m.store(max_connections=2, timeout=0.5)
    async with store.session(ALICE), store.session(BOB):
        start = time.perf_counter()
        with pytest.raises(MailboxUnavailable) as caught:
            async with store.session(ALICE):
                pass
        assert caught.value.reason == "busy"
        assert time.perf_counter() - start < 1.0
    async with store.session(ALICE) as box:  # slots are given back
        assert await box.voice_messages() == []


def test_settings_default_to_the_phone_master_user():
    from mailcall.mailstore import MailstoreSettings

    s = MailstoreSettings()
    assert (s.master_user, s.timeout, s.host) == ("mailcall-phone", 1.5, "127.0.0.1")
    with pytest.raises(ValueError):
        MailstoreSettings(max_connections=0)




async def test_a_long_voice_folder_is_listed_a_page_at_a_time(phone_mail):
    """Only as many candidates as are listed are fetched and seal-checked (fetching all of
    them made a 1,000-voicemail login cost 0.4 s of CPU per call); a forged one in the first
    page makes the listing fetch one more page; the counts say how far they are exact."""
    m = phone_mail
    await m.deposit(voice("call.first", name="Premier"))
    m.deliver(forged_voice())                    # a candidate without a valid seal
    await m.deposit(*(voice(f"call.{n}", name=f"Caller {n}") for n in range(20)))
    seen_one = next(str(_parse(r)["Message-ID"]) for r in m.dovecot.fetch_all(ALICE, "Voicemail")
                    if "Caller 19" in str(_parse(r)["Subject"]))
    m.set_flag("Voicemail", seen_one, "\\Seen")
    async with m.store(max_listed=2).session(ALICE) as box:
        fetched: list[str] = []
        conn = box._box.conn
        real_uid = conn.uid

        def spy(command, *args):  # the real command, its UID set noted
            if command == "FETCH" and "HEADER.FIELDS" in args[-1]:
                fetched.append(args[0])
            return real_uid(command, *args)

        conn.uid = spy
        capped = await box.voice_listing()
        conn.uid = real_uid
    assert [s.caller_name for s in capped.messages] == ["Premier", "Caller 0"]
    assert not capped.complete and not capped.new_complete
    candidates = sum(len(uid_range(part)) for first in fetched for part in first.split(","))
    assert len(fetched) == 2 and candidates == 2 + 10, fetched  # 22 candidates in the folder
    async with m.store().session(ALICE) as box:
        listing = await box.voice_listing()
    assert listing.complete and listing.new_complete
    assert (listing.new, listing.old) == (20, 1)
    assert listing.messages[-1].caller_name == "Caller 19"  # saved ones after the new


def uid_range(part: str) -> range:
    low, _, high = part.partition(":")
    return range(int(low), int(high or low) + 1)


async def test_the_voice_listing_goes_on_page_after_page_without_repeats(phone_mail):
    """Each folder is listed max_listed at a time; `skip` (the UIDs a page examined) gives
    the next page: the same order as one long listing, nothing twice, a forged candidate
    refused once, and a message heard (\\Seen) between pages not listed again as saved."""
    m = phone_mail
    await m.deposit(*(voice(f"call.p{n}", name=f"Caller {n}") for n in range(4)))
    m.deliver(forged_voice())                    # a candidate without a valid seal
    await m.deposit(*(voice(f"call.p{n}", name=f"Caller {n}") for n in range(4, 7)))
    saved = next(str(_parse(r)["Message-ID"]) for r in m.dovecot.fetch_all(ALICE, "Voicemail")
                 if "Caller 1" in str(_parse(r)["Subject"]))
    m.set_flag("Voicemail", saved, "\\Seen")
    async with m.store().session(ALICE) as box:
        whole = await box.voice_listing()
    assert whole.complete and len(whole.messages) == 7
    async with m.store(max_listed=3).session(ALICE) as box:
        pages, skip = [], frozenset()
        while True:
            page = await box.voice_listing(skip)
            pages.append(page)
            if pages[0] is page:
                await box.mark_seen(page.messages[0])  # heard before the next page comes
            skip |= set(page.examined)
            if page.complete or len(pages) > 5:
                break
    got = [s.message_id for p in pages for s in p.messages]
    assert got == [s.message_id for s in whole.messages]
    assert [len(p.messages) for p in pages] == [3, 3, 1]
    assert [p.complete for p in pages] == [False, False, True]
    assert pages[1].new_complete and not pages[0].new_complete  # 6 new: exact from page 2
    assert got[-1] == saved  # the saved one last, as in the whole listing


async def test_the_unread_mail_goes_on_page_after_page_before_the_lowest_uid(phone_mail):
    m = phone_mail
    for n in range(7):
        m.deliver(plain(f"Mail {n}", "x"))
    async with m.store().session(ALICE) as box:
        whole = await box.unread_mail()
    assert not whole.more and len(whole.messages) == 7
    async with m.store(max_listed=3).session(ALICE) as box:
        pages = [await box.unread_mail()]
        await box.mark_seen(pages[0].messages[0])  # heard: no longer unseen
        while pages[-1].more and len(pages) < 5:
            lowest = min(s.uid for s in pages[-1].messages)
            pages.append(await box.unread_mail(before=lowest))
    assert [s.subject for p in pages for s in p.messages] == [
        s.subject for s in whole.messages]
    assert [len(p.messages) for p in pages] == [3, 3, 1]
    assert [p.more for p in pages] == [True, True, False]
    assert [p.count for p in pages] == [7, 6, 6]  # every unseen one, counted each time
