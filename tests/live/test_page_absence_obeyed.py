"""One fact, both sides, set by the employee on the page (issue 14, "Tests").

`mailcall serve` runs as the admin starts it (tests/live/conftest.py), with web.toml
beside the policy: the web page, the FastAGI routing, the user store's service, the
greetings and the per-user Sieve scripts in one process. Alice logs in in headless
chromium with her real Dovecot password and sets an absence (back in 10 days,
Carole takes her calls, a message). The page's plan sentence changes; then a real
call through the real Asterisk rings Carole and not Alice and plays Alice's absence
greeting, regenerated for this absence; a mail delivered to Alice by Dovecot's LMTP
gets exactly one auto-reply (Sieve vacation, sent to the test's SMTP sink) with the
same return date, backup and message. She removes the absence on the page: the next
call rings her again and the next mail gets no auto-reply.
"""

from __future__ import annotations

import email
import email.policy
import time
from datetime import datetime, timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from mailcall.core.decisions.absence_text import auto_reply_text
from mailcall.core.decisions.greeting_text import greeting_text
from mailcall.core.policy.load import compile_text
from mailcall.sieve.generate import USERS_DIR
from mailcall.userstore.overlay import store_view
from mailcall.userstore.sqlite_store import SqliteStore
from tests.sieve.support import PARIS, CaptureSMTP, LoopThread, message
from tests.support.dovecot import PASSWORD
from tests.support.sipp import Hangup, Pause
from tests.support.waiting import wait_until
from tests.support.web_page import chromium, page_url, write_web_toml
from tests.web.test_browser import navigates, plan_text, shot

from .checks import agi_rx, body_text, leave_message, played

ALICE = "alice@stockinox.example"
MESSAGE = "Au salon de Lyon, je lis mes mails le soir."
BEFORE = "Your phone rings for 5 s. If you do not answer within 5 s: Bernard Petit, then voicemail."
"""Alice's plan from tests/live/policy.toml alone (no absence of hers there)."""


@pytest.fixture
def smtp_sink():
    """Where Dovecot sends the vacation replies (``submission_host``): the outside world."""
    loop = LoopThread()
    sink = CaptureSMTP()
    loop.run(sink.start())
    yield sink
    loop.run(sink.stop())
    loop.close()


@pytest.fixture
def served(live_factory, smtp_sink, monkeypatch):
    """The live test's mailcall serve, started with web.toml beside its policy."""
    live = live_factory(mailcall=False, dovecot_extra=lambda _work: (
        f"submission_host = 127.0.0.1:{smtp_sink.port}\n"
        "postmaster_address = postmaster@stockinox.example\n"))
    write_web_toml(live.policy_path, live.dovecot.imap_port)
    # docs/user-settings.md: sievec compiles the rewritten scripts with Dovecot's config.
    monkeypatch.setenv("MAILCALL_DOVECOT_CONFIG", str(live.dovecot.conf))
    monkeypatch.delenv("MAILCALL_USER_STORE", raising=False)
    live.start_mailcall()
    return live, page_url(live.mailcall_log)


def replies_to(sink: CaptureSMTP, address: str) -> list[email.message.EmailMessage]:
    return [email.message_from_bytes(m.data, policy=email.policy.default)
            for m in sink.to(address)]


def test_an_absence_set_on_the_page_is_obeyed_by_the_next_call_and_the_next_mail(
        served, smtp_sink):
    live, url = served
    store = live.work / "users" / "store.sqlite"  # beside --greetings-dir: serve's default
    script = live.work / "sieve" / USERS_DIR / f"{ALICE}.sieve"
    greeting = live.greetings / "alice" / "generated-absence"
    assert not script.exists() and not greeting.with_suffix(".wav").exists()
    until = (datetime.now(PARIS) + timedelta(days=10)).date().isoformat()

    with chromium("en") as b:
        # ---- the page: real Dovecot credentials, an absence in a few clicks
        b.get(url + "/")
        assert b.current_url.endswith("/login"), b.current_url
        b.find_element(By.ID, "login").send_keys(ALICE)
        navigates(b, lambda: b.find_element(By.ID, "password").send_keys(PASSWORD, Keys.ENTER))
        assert plan_text(b) == BEFORE, plan_text(b)

        b.find_element(By.ID, "until").send_keys(until)
        Select(b.find_element(By.ID, "backup")).select_by_visible_text("Carole Dubois")
        b.find_element(By.ID, "message").send_keys(MESSAGE)
        navigates(b, lambda: b.find_element(By.ID, "set-absence").click())
        set_at = time.monotonic()
        after = plan_text(b)
        assert after == (f"You are away until {until} 00:00: your phone does not ring. "
                         "Calls go to: Carole Dubois, then Bernard Petit, then voicemail "
                         "with your absence greeting."), after
        listed = b.find_element(By.ID, "absences").text
        assert "calls to Carole Dubois" in listed and MESSAGE in listed, listed
        shot(b, "live-absence-set")

        # The one stored fact, as both sides must read it.
        backend = SqliteStore(store)
        try:
            assert [(e.field, e.stamp.origin, e.stamp.actor) for e in backend.audit("alice")] \
                == [("absence", "web", "alice")]
        finally:
            backend.close()
        refined, problems = store_view(compile_text(live.policy_path.read_text()), store)
        assert problems == []
        (absence,) = refined.absences["alice"]
        assert (absence.backup, absence.message) == ("carole", MESSAGE)
        assert absence.until.astimezone(PARIS).date().isoformat() == until

        # ---- what the running service made of it: the greeting and the auto-reply script
        spoken = greeting_text(refined, "alice", "absence", datetime.now(PARIS))
        assert spoken is not None and "Carole Dubois" in spoken
        assert wait_until(lambda: greeting.with_suffix(".wav").exists()
                          and greeting.with_suffix(".txt").exists(), 20), live.mailcall_log()
        assert greeting.with_suffix(".txt").read_text("utf-8") == spoken
        assert wait_until(lambda: script.exists() and MESSAGE in script.read_text(), 20), \
            live.mailcall_log()[-4000:]
        obeyed_in = time.monotonic() - set_at

        # ---- mail: delivered by LMTP, answered once by Dovecot with the absence's words
        assert live.dovecot.lmtp_send("bob@example.net", [ALICE],
                                      message(to=ALICE, subject="Devis inox 316L")) == {}
        assert wait_until(lambda: smtp_sink.to("bob@example.net"), 15), (
            f"no auto-reply reached the SMTP sink; Dovecot log:\n"
            f"{live.dovecot.log_text()[-3000:]}")
        time.sleep(1.0)  # a second reply, if any, would have arrived by now
        (reply,) = replies_to(smtp_sink, "bob@example.net")
        subject, body = auto_reply_text(refined, "alice", absence)
        assert reply["Subject"] == subject
        assert reply["Auto-Submitted"].startswith("auto-replied")
        assert reply["From"].addresses[0].addr_spec == ALICE
        text = reply.get_content().replace("\r\n", "\n")  # as Sieve's vacation sent it
        assert text.strip() == body.strip(), (text, body)
        assert MESSAGE in text and "Carole Dubois <carole@stockinox.example>" in text
        [filed] = live.mail("alice", "INBOX")
        assert filed["Subject"] == "Devis inox 316L"

        # ---- the phone, as the sentence says: Carole, then Bernard (her usual backup),
        # never Alice, then her absence greeting
        alice = live.phone("201", "answer")
        carole = live.phone("203", "ringout")
        bernard = live.phone("202", "ringout")
        mark = live.ast.mark()
        caller = live.call("+33140000201", leave_message(live.media.speech),
                           from_name="Client Durand")
        assert caller.final_code() == 200
        log = live.ast.log_since(mark)
        rx = agi_rx(log)
        assert [line for line in rx if line.startswith("EXEC Dial")] == \
            ['EXEC Dial "PJSIP/203,5"', 'EXEC Dial "PJSIP/202,5"'], rx
        assert not alice.requests("INVITE")
        assert len(carole.requests("INVITE")) == 1 and len(bernard.requests("INVITE")) == 1
        greetings = [f for f, _lang in played(log) if "/greetings/" in f]
        assert greetings == [f"{live.greetings}/alice/generated-absence.slin"], played(log)
        assert 'SET VARIABLE MAILCALL_GREETING "absence"' in rx, rx
        [voicemail] = live.mail("alice", "Voicemail")
        assert "the recipient is away" in body_text(voicemail)
        live.wait_idle()

        # ---- removed on the page: the plan, the greeting and the script go back
        navigates(b, lambda: b.find_element(By.CSS_SELECTOR, "#absences button").click())
        assert plan_text(b) == BEFORE, plan_text(b)
    backend = SqliteStore(store)
    try:
        # Seen from another process, as the CLI would read it (the removal is committed
        # where every connection sees it, not only in the serving process).
        assert [(e.field, e.stamp.origin, e.stamp.actor, e.new is None)
                for e in backend.audit("alice")] == [
            ("absence", "web", "alice", True), ("absence", "web", "alice", False)]
        assert backend.read("alice").absences == ()
    finally:
        backend.close()
    assert wait_until(lambda: not script.exists(), 20), live.mailcall_log()[-4000:]
    assert wait_until(lambda: not greeting.with_suffix(".wav").exists(), 20)

    # The next call rings Alice (she answers), the next mail gets no auto-reply.
    mark = live.ast.mark()
    caller = live.call("+33140000201", [Pause(1500), Hangup()], from_name="Client Martin")
    assert caller.final_code() == 200
    rx = agi_rx(live.ast.log_since(mark))
    assert [line for line in rx if line.startswith("EXEC Dial")][:1] == \
        ['EXEC Dial "PJSIP/201,5"'], rx
    assert len(alice.requests("INVITE")) == 1 and len(carole.requests("INVITE")) == 1
    assert not any("MAILCALL_GREETING" in line for line in rx), rx
    assert live.dovecot.lmtp_send("carl@example.net", [ALICE],
                                  message(to=ALICE, subject="Relance")) == {}
    live.mail("alice", "INBOX", count=2)
    time.sleep(1.5)  # a reply, if any, would have arrived by now
    assert smtp_sink.to("carl@example.net") == []
    assert len(smtp_sink.to("bob@example.net")) == 1
    print(f"page change -> greeting and auto-reply script rewritten: {obeyed_in:.2f} s")
