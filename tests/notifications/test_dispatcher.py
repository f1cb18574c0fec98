"""The dispatcher: limits, de-duplication, loops, media, outcomes, what is logged and audited.

Moved from tests/sieve/test_channels.py (the dispatcher left the sieve package),
with the defects of issue 10 §3 added: the rate limit logged once per user and
period, outside text cleaned by the one rule, failures that never count.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
import unicodedata
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailcall.core.contracts import VoiceCounts
from mailcall.core.decisions.plans import Notify
from mailcall.core.hookspecs import hookimpl
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import compile_text
from mailcall.notifications import (
    ChannelError,
    Dispatcher,
    MailNotice,
    PermanentChannelError,
    Retry,
    TemporaryChannelError,
)
from mailcall.notifications.channels import FileChannel, SmsGatewayChannel
from mailcall.notifications.store import Store
from mailcall.plugins import channels as channels_plugin
from tests.sieve.support import OFFICE_HOURS, policy_text
from tests.support.lamp import CountingLamp

ALICE_SMS = Notify(user="alice", medium="sms", address="+33612345678", why="test")
FAST = Retry(first=0.05, cap=0.1, deadline=30)


class Recorder:
    def __init__(self, medium: str, fail: bool = False) -> None:
        self.medium = medium
        self.fail = fail
        self.sent: list[tuple] = []

    async def send(self, notification, subject, text) -> None:
        if self.fail:
            raise ChannelError("gateway down")
        self.sent.append((notification, subject, text))


def runtime_for(tmp_path: Path, rate: int = 20, extra: str = "", relay_port: int = 25) -> Runtime:
    """The sieve tests' policy; its [channels] relay is 127.0.0.1:`relay_port`."""
    text = policy_text(socket=tmp_path / "s", smtp_port=relay_port,
                       file_path=tmp_path / "n.jsonl", rate=rate)
    policy = compile_text(text.replace("[channels]\n", "[channels]\n" + extra, 1))
    pm = make_plugin_manager(entrypoints=False)
    pm.register(channels_plugin, name="channels")
    runtime = Runtime(policy, pm)
    runtime.clock = lambda: OFFICE_HOURS
    return runtime


def dispatcher(tmp_path: Path, runtime: Runtime, channels: list, **kw) -> Dispatcher:
    return Dispatcher(runtime, channels, path=tmp_path / "queue" / "queue.sqlite", **kw)


def notice(msgid: str = "<m@x>", **kw) -> MailNotice:
    base = dict(notifications=(ALICE_SMS,), recipient="alice@stockinox.example",
                sender="bob@example.net", message_id=msgid, subject="Devis", from_header="Bob")
    base.update(kw)
    return MailNotice(**base)


def records(tmp_path: Path) -> list[dict]:
    path = tmp_path / "n.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines()] if path.exists() else []


def test_rate_limit_per_user_per_hour(tmp_path: Path):
    runtime = runtime_for(tmp_path, rate=2)
    sms = Recorder("sms")
    d = dispatcher(tmp_path, runtime, [sms, FileChannel(runtime)])

    async def scenario():
        out = [await d.dispatch(notice(f"<{n}@x>")) for n in range(3)]
        runtime.clock = lambda: OFFICE_HOURS + timedelta(hours=1, seconds=1)
        out.append(await d.dispatch(notice("<late@x>")))
        return out

    assert asyncio.run(scenario()) == [["sent"], ["sent"], ["rate-limited"], ["sent"]]
    assert len(sms.sent) == 3
    assert [r["outcome"] for r in records(tmp_path)] == ["sent", "sent", "rate-limited", "sent"]


def test_rate_limit_is_logged_once_per_user_and_period(tmp_path: Path, caplog):
    """Issue 10 §3: once over the hourly rate, every mail wrote a WARNING and an audit line."""
    runtime = runtime_for(tmp_path, rate=1)
    sms = Recorder("sms")
    d = dispatcher(tmp_path, runtime, [sms, FileChannel(runtime)])
    bernard = Notify(user="bernard", medium="sms", address="+33698765432", why="t")

    async def scenario():
        out = [await d.dispatch(notice(f"<{n}@x>")) for n in range(5)]
        out.append(await d.dispatch(notice("<b1@x>", notifications=(bernard,))))
        out.append(await d.dispatch(notice("<b2@x>", notifications=(bernard,))))
        # The next period: one slot again, and one warning again once it is used up.
        runtime.clock = lambda: OFFICE_HOURS + timedelta(hours=1, seconds=1)
        out += [await d.dispatch(notice(f"<late{n}@x>")) for n in range(3)]
        return out

    with caplog.at_level(logging.DEBUG, logger="mailcall.notifications"):
        outcomes = asyncio.run(scenario())
    assert outcomes == [["sent"]] + [["rate-limited"]] * 4 + [["sent"], ["rate-limited"]] + [
        ["sent"], ["rate-limited"], ["rate-limited"]]
    warnings = [r.getMessage() for r in caplog.records
                if r.levelno == logging.WARNING and "rate limit" in r.getMessage()]
    assert len(warnings) == 3, warnings  # alice, bernard, alice in the next period
    assert warnings[0].startswith("rate limit: alice already had 1 notifications this hour")
    assert "rate_limit_per_hour = 1" in warnings[0] and "until 11:00" in warnings[0]
    assert warnings[1].startswith("rate limit: bernard")
    audit = [(r["user"], r["outcome"]) for r in records(tmp_path)]
    assert audit == [("alice", "sent"), ("alice", "rate-limited"), ("bernard", "sent"),
                     ("bernard", "rate-limited"), ("alice", "sent"), ("alice", "rate-limited")]


def test_deduplicated_by_message_id_per_user(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    sms = Recorder("sms")
    d = dispatcher(tmp_path, runtime, [sms])
    bernard = Notify(user="bernard", medium="sms", address="+33698765432", why="t")

    async def scenario():
        return [await d.dispatch(notice("<Same@X>")), await d.dispatch(notice("<same@x>")),
                await d.dispatch(notice("<same@x>", notifications=(bernard,)))]

    assert asyncio.run(scenario()) == [["sent"], ["duplicate"], ["sent"]]


def test_two_copies_at_once_are_sent_once(tmp_path: Path):
    """A mail addressed twice arrives as two submissions at the same moment: one
    user's notifications are sent one at a time, so the second is a duplicate."""
    runtime = runtime_for(tmp_path)
    sms = Recorder("sms")
    d = dispatcher(tmp_path, runtime, [sms, FileChannel(runtime)])

    async def scenario():
        await d.start()
        try:
            accepted = [await f for f in [d.submit(notice("<twice@x>")) for _ in range(2)]]
            await d.drain()
            return accepted
        finally:
            await d.stop(1)

    assert asyncio.run(scenario()) == [True, True]
    assert len(sms.sent) == 1
    assert sorted(r["outcome"] for r in records(tmp_path)) == ["duplicate", "sent"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"auto_submitted": "auto-replied"}, "Auto-Submitted"),
        ({"list_id": "<sales.example>"}, "List-Id"),
        ({"precedence": "bulk"}, "Precedence"),
        ({"sender": ""}, "null"),
        ({"sender": "MAILER-DAEMON@example.net"}, "robot"),
        ({"sender": "mailcall@stockinox.example"}, "mailcall itself"),
    ],
)
def test_never_loops(tmp_path: Path, change: dict, why: str):
    runtime = runtime_for(tmp_path)
    sms = Recorder("sms")
    outcome = asyncio.run(dispatcher(tmp_path, runtime, [sms]).dispatch(notice(**change)))
    assert outcome[0].startswith("skipped") and why in outcome[0]
    assert sms.sent == []


def test_preferred_medium_is_honoured_and_never_switched(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    sms, webhook = Recorder("sms"), Recorder("webhook")
    d = dispatcher(tmp_path, runtime, [sms, webhook])
    by_webhook = Notify(user="alice", medium="webhook", address="https://h.example/x", why="t")
    by_email = Notify(user="alice", medium="email", address="alice@x", why="t")
    assert asyncio.run(d.dispatch(notice(notifications=(by_webhook,)))) == ["sent"]
    assert (len(webhook.sent), len(sms.sent)) == (1, 0)
    assert asyncio.run(d.dispatch(notice("<2@x>", notifications=(by_email,)))) == ["no-channel"]
    assert len(sms.sent) == 0


def test_failure_is_reported_not_raised(tmp_path: Path):
    runtime = runtime_for(tmp_path)
    d = dispatcher(tmp_path, runtime, [Recorder("sms", fail=True), FileChannel(runtime)])
    assert asyncio.run(d.dispatch(notice())) == ["failed: gateway down"]
    assert records(tmp_path)[0]["outcome"] == "failed: gateway down"


def test_queue_is_bounded(tmp_path: Path):
    async def scenario():
        d = dispatcher(tmp_path, runtime_for(tmp_path), [Recorder("sms")], queue_size=2)
        futures = [d.submit(notice(str(n))) for n in range(3)]
        return [await f for f in futures]

    assert asyncio.run(scenario()) == [True, True, False]


def hidden(text: str) -> list[str]:
    return [f"U+{ord(c):04X}" for c in text
            if c not in " \n" and unicodedata.category(c)[0] in "CZ"]


def test_sms_text_carries_no_control_bidi_or_format_character(tmp_path: Path):
    """Issue 10 §3: DEL, C1 and bidi/format characters reached the SMS text."""
    runtime = runtime_for(tmp_path)
    sent: list[EmailMessage] = []

    async def capture(msg: EmailMessage) -> None:
        sent.append(msg)

    d = dispatcher(tmp_path, runtime, [SmsGatewayChannel(runtime, send=capture)])
    nasty = notice(from_header="Bob\x7f\x85Client \u202egnp.exe\u2066\u200b",
                   subject="Devis\x9b31m \u2028urgent\u00ad\ufeff\U000e0041 316L\x00")
    assert asyncio.run(d.dispatch(nasty)) == ["sent"]
    subject, text = sent[0]["Subject"], sent[0].get_content()
    assert hidden(subject) == [] and hidden(text) == [], (subject, text)
    assert subject == "Nouveau courriel de Bob Client gnp.exe"
    assert text.splitlines() == ["De : Bob Client gnp.exe", "Objet : Devis 31m urgent 316L"]


def test_log_lines_show_outside_text_cleaned(tmp_path: Path, caplog):
    runtime = runtime_for(tmp_path)
    d = dispatcher(tmp_path, runtime, [Recorder("sms")])
    with caplog.at_level(logging.INFO, logger="mailcall.notifications"):
        assert asyncio.run(d.dispatch(notice("<a\u202e\x85b@x>\r\nforged: line"))) == ["sent"]
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("notified"))
    assert line == "notified alice by sms of mail <a b@x> forged: line: sent"


class Flaky:
    """A third-party channel with its own idea of what is temporary."""

    medium = "sms"

    class Busy(Exception):
        pass

    temporary_errors = (Busy,)

    def __init__(self, failures: list[Exception]) -> None:
        self.failures = failures
        self.sent: list[str] = []
        self.calls = 0

    async def send(self, notification, subject, text) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(text)
        return "gateway said OK"


async def first_send(channel, within: float = 6.0) -> None:
    """Until `channel` has sent something, at most `within` seconds (then the test's
    own assertions say what is missing)."""
    deadline = time.monotonic() + within
    while not channel.sent and time.monotonic() < deadline:
        await asyncio.sleep(0.02)


def test_a_channel_declares_what_is_temporary(tmp_path: Path, caplog):
    runtime = runtime_for(tmp_path, rate=1)
    channel = Flaky([Flaky.Busy("busy, try later"), TemporaryChannelError("still busy")])
    d = dispatcher(tmp_path, runtime, [channel, FileChannel(runtime)], retry=FAST)

    async def scenario():
        await d.start()
        try:
            assert await d.submit(notice("<t@x>"))
            await first_send(channel)
            await d.drain()
        finally:
            await d.stop(1)

    with caplog.at_level(logging.INFO, logger="mailcall.notifications"):
        asyncio.run(scenario())
    assert channel.calls == 3 and len(channel.sent) == 1
    retries = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert retries[0].startswith("sms notification to alice of mail <t@x> not sent (attempt 1): "
                                 "busy, try later; next attempt in")
    assert len(retries) == 2
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("notified")]
    assert done == ["notified alice by sms of mail <t@x> (attempt 3): gateway said OK"]
    assert [(r["outcome"], r["attempts"]) for r in records(tmp_path)] == [("sent", 3)]


def test_a_permanent_failure_is_reported_once_and_counts_for_nothing(tmp_path: Path, caplog):
    runtime = runtime_for(tmp_path, rate=1)
    channel = Flaky([PermanentChannelError("number unknown to the gateway")])
    d = dispatcher(tmp_path, runtime, [channel], retry=FAST)
    with caplog.at_level(logging.INFO, logger="mailcall.notifications"):
        assert asyncio.run(d.dispatch(notice("<p@x>"))) == [
            "failed: number unknown to the gateway"]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["sms notification to alice of mail <p@x> failed for good: number unknown "
                      "to the gateway. Not retried: fix the cause (the address, or the gateway, "
                      "relay or webhook settings under [channels]); the mail itself is in the "
                      "mailbox"]
    # Neither the de-duplication key nor the only rate slot of the hour was taken.
    assert asyncio.run(d.dispatch(notice("<p@x>"))) == ["sent"]
    assert channel.calls == 2


def test_given_up_at_the_deadline(tmp_path: Path, caplog):
    runtime = runtime_for(tmp_path)
    channel = Flaky([TemporaryChannelError("relay down")] * 100)
    d = dispatcher(tmp_path, runtime, [channel, FileChannel(runtime)],
                   retry=Retry(first=0.05, cap=0.05, deadline=0.4))

    async def scenario():
        await d.start()
        try:
            assert await d.submit(notice("<g@x>"))
            for _ in range(200):
                if records(tmp_path):
                    break
                await asyncio.sleep(0.02)
        finally:
            await d.stop(1)

    with caplog.at_level(logging.INFO, logger="mailcall.notifications"):
        asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "given up after" in errors[0] and "relay down" in errors[0]
    (record,) = records(tmp_path)
    assert record["outcome"].startswith("failed: gave up after")
    assert 3 <= channel.calls <= 10


def test_dedupe_and_rate_survive_a_restart(tmp_path: Path):
    runtime = runtime_for(tmp_path, rate=1)
    sms = Recorder("sms")

    async def life(msgids: list[str]) -> list[list[str]]:
        d = dispatcher(tmp_path, runtime, [sms])
        await d.start()
        try:
            return [await d.dispatch(notice(m)) for m in msgids]
        finally:
            await d.stop(1)

    assert asyncio.run(life(["<r@x>"])) == [["sent"]]
    assert asyncio.run(life(["<r@x>", "<other@x>"])) == [["duplicate"], ["rate-limited"]]
    assert len(sms.sent) == 1


def test_hook_mailcall_services_offers_the_notifier(tmp_path: Path):
    """The channels plugin's service is the typed runtime.notifier, its queue beside the spool."""
    runtime = runtime_for(tmp_path)
    (service,) = [s for batch in runtime.pm.hook.mailcall_services(runtime=runtime)
                  for s in batch]
    assert isinstance(service, Dispatcher) and runtime.notifier is service
    assert service.name == "notifications"
    assert service.path == tmp_path / "spool" / "notifications" / "queue.sqlite"
    assert sorted(service.channels) == ["email", "file", "sms", "webhook"]


class Slow:
    """An SMS channel that takes `seconds` per send; it notes when each one ran."""

    def __init__(self, seconds: float) -> None:
        self.medium = "sms"
        self.seconds = seconds
        self.sent: list[tuple[str, float, float]] = []

    async def send(self, notification, subject, text) -> None:
        start = time.monotonic()
        await asyncio.sleep(self.seconds)
        self.sent.append((text, start, time.monotonic()))


def test_a_user_being_sent_to_does_not_spin_the_scheduler(tmp_path: Path):
    """Review: a user's due entries went back into the heap while a send to that user ran,
    so the scheduler woke at once, again and again (150,000 passes in 4.5 s) on the loop
    that also serves FastAGI. They now wait aside until that send ends."""
    runtime = runtime_for(tmp_path)
    slow = Slow(1.0)
    d = dispatcher(tmp_path, runtime, [slow, FileChannel(runtime)])
    passes = 0
    take_ready = d._take_ready

    def counted(now: float):
        nonlocal passes
        passes += 1
        return take_ready(now)

    d._take_ready = counted

    async def scenario():
        await d.start()
        try:
            subjects = ["Premier", "Deuxieme", "Troisieme"]
            futures = [d.submit(notice(f"<{n}@x>", subject=s)) for n, s in enumerate(subjects)]
            assert [await f for f in futures] == [True, True, True]
            await d.drain()
        finally:
            await d.stop(1)

    cpu = time.process_time()
    asyncio.run(scenario())
    cpu = time.process_time() - cpu
    assert [text.splitlines()[1] for text, _, _ in slow.sent] == [
        "Objet : Premier", "Objet : Deuxieme", "Objet : Troisieme"]
    for (_, _, end), (_, start, _) in zip(slow.sent, slow.sent[1:], strict=False):
        assert start >= end  # one at a time for one user
    assert [r["outcome"] for r in records(tmp_path)] == ["sent"] * 3
    assert passes < 20, passes
    assert cpu < 1.5, cpu  # the sends are 3 s of waiting, not of work


def test_refusals_show_the_recipient_cleaned(tmp_path: Path, caplog):
    """Review: the queue-full and unavailable lines showed the envelope recipient raw."""
    forged = "alice\u202e@x\r\nERROR forged: line"
    path = tmp_path / "q" / "queue.sqlite"
    runtime = runtime_for(tmp_path)
    first, second = Dispatcher(runtime, [], path=path), Dispatcher(runtime, [], path=path)

    async def scenario():
        await first.start()
        try:
            first.queue_size = 0
            assert await first.submit(notice("<full@x>", recipient=forged)) is False
            await second.start()  # the queue is first's: unavailable to second
            assert await second.submit(notice("<busy@x>", recipient=forged)) is False
        finally:
            await second.stop(1)
            await first.stop(1)

    with caplog.at_level(logging.ERROR, logger="mailcall.notifications"):
        asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records]
    assert f"notification queue {path} full (0 waiting): not notifying alice @x ERROR forged: " \
           "line of mail <full@x>; are the channels failing? (see the WARNINGs before)" in lines
    assert any(m.startswith("not notifying alice @x ERROR forged: line of mail <busy@x> (nor ")
               for m in lines), lines
    assert not any("\n" in m or "\u202e" in m for m in lines)


def test_a_notification_past_the_deadline_at_restart_is_given_up(tmp_path: Path, caplog):
    """Review: found in the queue at a restart, a notification about a 2-day-old mail was
    still sent (the deadline was checked only after a temporary failure). A recent one
    in the same queue still goes."""
    path = tmp_path / "queue" / "queue.sqlite"
    store = Store(path)
    assert store.open() == []
    store.add([notice("<old@x>")], time.time() - 2 * 86400)
    store.add([notice("<recent@x>")], time.time() - 60)
    store.close()
    runtime = runtime_for(tmp_path)
    sms = Recorder("sms")
    d = dispatcher(tmp_path, runtime, [sms, FileChannel(runtime)])

    async def scenario():
        await d.start()
        try:
            await d.drain()
        finally:
            await d.stop(1)

    with caplog.at_level(logging.INFO, logger="mailcall.notifications"):
        asyncio.run(scenario())
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [
        "sms notification to alice of mail <old@x> given up after 0 attempts over 48.0 h: "
        "not sent within the 6.0 h deadline (accepted 48.0 h ago; was mailcall stopped?). "
        "Check that the relay or gateway under [channels] is up and reachable; the mail "
        "itself is in the mailbox"]
    assert len(sms.sent) == 1
    assert [(r["message_id"], r["outcome"][:33]) for r in records(tmp_path)] == [
        ("<old@x>", "failed: gave up after 0 attempts:"), ("<recent@x>", "sent")]
    reopened = Store(path)
    assert reopened.open() == []  # neither is left to send at the next start
    reopened.close()


def test_an_unexpected_error_before_the_send_is_retried_not_stranded(tmp_path: Path, caplog):
    """The store failing while a send is prepared (an I/O error, a bug) left the entry with no
    schedule: never tried again until a restart, and stop() waited out its whole grace."""
    runtime = runtime_for(tmp_path)
    channel = Flaky([])
    d = dispatcher(tmp_path, runtime, [channel, FileChannel(runtime)], retry=FAST)
    real_history = d.store.history
    failures = [sqlite3.OperationalError("disk I/O error")]

    def history(*args):
        if failures:
            raise failures.pop(0)
        return real_history(*args)

    d.store.history = history

    async def scenario():
        await d.start()
        try:
            assert await d.submit(notice("<u@x>"))
            await first_send(channel)
        finally:
            started = time.monotonic()
            await d.stop(5)
        return time.monotonic() - started

    with caplog.at_level(logging.INFO, logger="mailcall.notifications"):
        stopping = asyncio.run(scenario())
    assert len(channel.sent) == 1 and not failures
    assert stopping < 2, stopping
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["sms notification to alice of mail <u@x>: sending failed unexpectedly; "
                      "it is tried again later"]


def test_a_retry_past_the_deadline_says_what_last_failed(tmp_path: Path, caplog):
    """A retry whose turn comes after the deadline (mailcall stopped, a loaded machine) is
    given up by the age check: its one ERROR line still says why the sends failed."""
    path = tmp_path / "queue" / "queue.sqlite"
    store = Store(path)
    assert store.open() == []
    (entry,) = store.add([notice("<late@x>")], time.time() - 2 * 86400)
    store.reschedule(entry.id, 3, time.time() - 86400, "relay answered 451 4.3.0 try later")
    store.close()
    runtime = runtime_for(tmp_path)
    d = dispatcher(tmp_path, runtime, [Recorder("sms"), FileChannel(runtime)])

    async def scenario():
        await d.start()
        try:
            await d.drain()
        finally:
            await d.stop(1)

    with caplog.at_level(logging.INFO, logger="mailcall.notifications"):
        asyncio.run(scenario())
    (error,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert error.startswith("sms notification to alice of mail <late@x> given up after 3 "
                            "attempts over 48.0 h: not sent within the 6.0 h deadline")
    assert "; last error: relay answered 451 4.3.0 try later." in error


@pytest.mark.parametrize(("counts", "delay", "lang", "said"), [
    (VoiceCounts(3, 1), 0.0, "en", "3 new voice messages"),
    (VoiceCounts(1, 0), 0.0, "en", "1 new voice message"),
    (VoiceCounts(2, 0), 0.0, "fr", "2 nouveaux messages vocaux"),
    (VoiceCounts(0, 4), 0.0, "en", None),  # nothing new: no "0 new"
    (None, 0.0, "en", None),  # the folder could not be read: no number at all
    (VoiceCounts(5, 0), 5.0, "en", None),  # the lamp is slow: the news is not held back
])
def test_a_voicemail_notification_tells_the_lamps_counts(tmp_path: Path, counts, delay, lang,
                                                          said, monkeypatch):
    import mailcall.notifications.sending as dispatcher_module

    monkeypatch.setattr(dispatcher_module, "VOICE_COUNTS_WAIT", 0.5)
    runtime = runtime_for(tmp_path)
    lamp = CountingLamp(counts, delay)
    runtime.pm.register(lamp)
    user = runtime.policy.users["alice"]
    object.__setattr__(user, "language", lang)
    sms = Recorder("sms")
    d = dispatcher(tmp_path, runtime, [sms, FileChannel(runtime)])
    voicemail = notice("<v1@mailcall>", origin="deposit", kind="voice", subject="Voicemail",
                       from_header="Bernard +33612345678")
    mail = notice("<m1@x>")
    assert asyncio.run(d.dispatch(voicemail)) == ["sent"]
    assert asyncio.run(d.dispatch(mail)) == ["sent"]
    (_, _, voice_text), (_, _, mail_text) = sms.sent
    lines = voice_text.splitlines()
    if said is None:
        assert len(lines) == 2, voice_text
        assert not any(ch.isdigit() for ch in lines[1]), voice_text
    else:
        assert lines[-1] == said, voice_text
    assert lamp.asked == ["alice"]  # asked for the voicemail, not for the mail
    assert "voice" not in mail_text and "vocal" not in mail_text


class SharedRecount:
    """A lamp whose answer is one recount under way, shared by every reader (a future, as
    a lamp that recounts once for all who ask would hand out)."""

    def __init__(self) -> None:
        self.recount: asyncio.Future[VoiceCounts] | None = None

    @hookimpl
    def mailcall_voice_counts(self, runtime, user):
        if self.recount is None:
            self.recount = asyncio.get_running_loop().create_future()
        return self.recount


def test_a_slow_shared_recount_is_not_cancelled_by_the_notification(tmp_path: Path,
                                                                    monkeypatch, caplog):
    """The notification stops waiting after VOICE_COUNTS_WAIT and goes without a count,
    but leaves the lamp's recount to the others waiting for it (the phone menu's greeting):
    it used to cancel it under them. Read by the one reader (core/host/voice_counts.py)."""
    import mailcall.notifications.sending as dispatcher_module

    monkeypatch.setattr(dispatcher_module, "VOICE_COUNTS_WAIT", 0.2)
    runtime = runtime_for(tmp_path)
    lamp = SharedRecount()
    runtime.pm.register(lamp)
    sms = Recorder("sms")
    d = dispatcher(tmp_path, runtime, [sms, FileChannel(runtime)])
    voicemail = notice("<v2@mailcall>", origin="deposit", kind="voice", subject="Voicemail",
                       from_header="Bernard +33612345678")

    async def scenario():
        outcome = await d.dispatch(voicemail)
        return outcome, lamp.recount is not None and lamp.recount.cancelled()

    with caplog.at_level(logging.INFO, "mailcall.voice_counts"):
        outcome, cancelled = asyncio.run(scenario())
    assert outcome == ["sent"] and not cancelled
    [(_, _, text)] = sms.sent
    assert not any(ch.isdigit() for ch in text.splitlines()[1]), text
    assert any("a voicemail notification" in r.getMessage() and "no answer within" in
               r.getMessage() for r in caplog.records), caplog.records
