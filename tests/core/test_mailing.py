"""Mail decisions: notification to the mobile, folders, absence replies, never a loop."""

from __future__ import annotations

from datetime import datetime

from mailcall.core.decisions.deposit_plan import UnknownMailbox, plan_deposit
from mailcall.core.decisions.mailing import plan_mail
from mailcall.core.decisions.plans import AutoReply, FileInto, MailRequest, Notify

OPEN = datetime(2026, 12, 1, 10, 5)
CLOSED = datetime(2026, 12, 1, 21, 0)
AWAY = datetime(2026, 12, 2, 10, 5)


def kinds(plan):
    return [a.kind for a in plan.actions]


def test_customer_facing_user_is_notified_by_sms(example):
    plan = plan_mail(example, MailRequest("alice@stockinox.example", "client@example.com", OPEN))
    assert plan.actions == (Notify("alice", "sms", "+33612345678",
                                   "profile sales notifies new mail by sms"),)


def test_administrative_user_is_not_notified(example):
    plan = plan_mail(example, MailRequest("carole@stockinox.example", "client@example.com", OPEN))
    assert plan.actions == ()
    assert "profile office does not notify the mobile of new mail" in plan.explanation


def test_no_notification_outside_hours(example):
    plan = plan_mail(example, MailRequest("alice@stockinox.example", "c@example.com", CLOSED))
    assert plan.actions == ()
    assert any("only during office hours" in e for e in plan.explanation)


def test_voice_message_is_filed_and_notified(example):
    plan = plan_mail(example, MailRequest("ALICE@stockinox.example", "pbx@stockinox.example",
                                          OPEN, context="Voice-Message; msg-count=1"))
    assert plan.actions[0] == FileInto("Voicemail", "voice message (Message-Context)")
    assert kinds(plan) == ["fileinto", "notify"]


def test_fax_is_filed(example):
    plan = plan_mail(example, MailRequest("carole@stockinox.example", "", OPEN,
                                          context="fax-message"))
    assert plan.actions == (FileInto("Fax", "fax message (Message-Context)"),)


def test_absent_user_auto_reply_with_dates_and_backup(example):
    plan = plan_mail(example, MailRequest("emma@stockinox.example", "client@example.com", AWAY))
    (reply,) = plan.actions
    assert isinstance(reply, AutoReply)
    assert reply.to == "client@example.com" and reply.days == 1
    assert "12/12/2026" in reply.subject                      # last day away, in French
    assert "Bernard Petit <bernard@stockinox.example>, 202" in reply.body
    assert "Je suis en congé" in reply.body


def test_no_reply_or_notification_to_automatic_mail(example):
    for extra in ({"auto_submitted": "auto-replied"}, {"list_id": "<l.example.com>"},
                  {"precedence": "bulk"}, {"sender": "MAILER-DAEMON@example.com"},
                  {"sender": ""}):
        fields = {"recipient": "emma@stockinox.example", "sender": "x@example.com", "at": AWAY}
        fields.update(extra)
        assert plan_mail(example, MailRequest(**fields)).actions == (), extra
        fields["recipient"], fields["at"] = "alice@stockinox.example", OPEN
        assert plan_mail(example, MailRequest(**fields)).actions == (), extra


def test_unknown_recipient(example):
    plan = plan_mail(example, MailRequest("nobody@elsewhere.example", "x@example.com", OPEN))
    assert plan.user is None and plan.actions == ()


def test_deposit_plan_uses_profile_and_override(example):
    alice = plan_deposit(example, mailbox="alice", kind="voice", at=OPEN)
    assert (alice.recipient, alice.audio_format, alice.language) == (
        "alice@stockinox.example", "opus", "fr")
    bernard = plan_deposit(example, mailbox="bernard", kind="voice", at=OPEN)
    assert bernard.audio_format == "wav"
    fax = plan_deposit(example, mailbox="carole", kind="fax", at=OPEN)
    assert fax.fax_formats == ("pdf",)
    try:
        plan_deposit(example, mailbox="ghost", kind="voice", at=OPEN)
    except UnknownMailbox as exc:
        assert "ghost" in str(exc)
    else:
        raise AssertionError("unknown mailbox accepted")


def test_deposit_notifies_under_the_same_rules_as_mail(example):
    alice = plan_deposit(example, mailbox="alice", kind="voice", at=OPEN)
    assert alice.notify == (Notify("alice", "sms", "+33612345678",
                                   "profile sales notifies voicemail and fax by sms"),)
    assert plan_deposit(example, mailbox="alice", kind="fax", at=OPEN).notify == alice.notify
    assert plan_deposit(example, mailbox="alice", kind="voice", at=CLOSED).notify == ()
    assert plan_deposit(example, mailbox="carole", kind="voice", at=OPEN).notify == ()
    away = plan_deposit(example, mailbox="emma", kind="voice", at=AWAY)
    assert away.notify == () and "no notification: emma is absent" in away.explanation


def test_mailcall_own_voice_message_is_not_notified_twice(example):
    plan = plan_mail(example, MailRequest("alice@stockinox.example", "mailcall@stockinox.example",
                                          OPEN, context="voice-message",
                                          auto_submitted="auto-generated"))
    assert [a.kind for a in plan.actions] == ["fileinto"]


def test_a_plugin_medium_is_planned_for_a_deposit_with_its_declared_address():
    """plan_deposit looked the address up in a closed table (KeyError for any medium it
    did not list, and the voicemail was parked): it now takes the address the compiler
    resolved from the medium's declaration, here a per-user key a plugin adds."""
    from mailcall.core.contracts import Medium, Setting, UserKey
    from mailcall.core.hookspecs import hookimpl
    from mailcall.core.host.plugin_manager import make_plugin_manager
    from mailcall.core.policy.load import compile_text

    class Pager:
        @hookimpl
        def mailcall_notification_media(self):
            return [Medium("pager", address=UserKey(Setting("pager_number")))]

    pm = make_plugin_manager()
    pm.register(Pager())
    policy = compile_text(
        '[organisation]\nname = "T"\ndomain = "t.example"\n'
        '[profiles.p.features]\nnotify = { voicemail = true, media = ["pager"] }\n'
        '[users.a]\nname = "A"\nemail = "a@t.example"\nprofile = "p"\npager_number = "4711"\n',
        pm=pm)
    plan = plan_deposit(policy, mailbox="a", kind="voice", at=OPEN)
    assert plan.notify == (Notify("a", "pager", "4711",
                                  "profile p notifies voicemail and fax by pager"),)


def test_one_default_sender(example):
    """`mailcall@<domain>` was written in four places; Policy.sender is the one."""
    from dataclasses import replace

    from mailcall.notifications.relay import sender_address
    from mailcall.plugins.deposit import origin_for
    from mailcall.sieve.generate import own_sender

    assert example.delivery.sender == ""
    assert example.sender == "mailcall@stockinox.example"
    custom = replace(example, delivery=replace(example.delivery, sender="pbx@stockinox.example"))
    for policy in (example, custom):
        assert sender_address(policy) == origin_for(policy).sender == own_sender(policy) \
            == policy.sender
    assert custom.sender == "pbx@stockinox.example"
