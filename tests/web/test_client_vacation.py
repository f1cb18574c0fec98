"""The out-of-office a user set in their mail client, shown on the page after login.

A real Dovecot 2.3 + Pigeonhole with a ManageSieve listener holds the user's script,
uploaded and activated with the real ManageSieve protocol as Roundcube does; the page
reads it at the login, as the user, with the password just typed (docs/web.md).
"""

from __future__ import annotations

import html
import logging
import re

import pytest

from mailcall.sieve.managesieve_session import Session as ManageSieve
from mailcall.web.config import ClientSieve
from tests.support.dovecot import PASSWORD, free_port
from tests.web.client import Client
from tests.web.harness import USERS, WebHarness

pytestmark = pytest.mark.dovecot

ALICE = "alice@stockinox.example"
# What the user typed in Roundcube's form: outside text, with markup and a hidden character.
REASON = "Absente jusqu'au 20 <b>urgent</b>\u202e : écrivez à support@stockinox.example"


def roundcube_script() -> str:
    """Roundcube's managesieve "Out of Office" rule, dated around the harness's clock (NOW)."""
    return (
        'require ["date","relational","vacation"];\n'
        "# rule:[Absence]\n"
        'if allof (currentdate :zone "+0100" :value "ge" "date" "2026-11-30", '
        'currentdate :zone "+0100" :value "le" "date" "2026-12-20")\n'
        "{\n"
        f'\tvacation :days 1 :subject "Absente (client)" :from "{ALICE}" "{REASON}";\n'
        "}\n")


@pytest.fixture
def sieve_server(dovecot_factory):
    port = free_port()
    dovecot = dovecot_factory(
        users=USERS,
        plugin={"sieve": "file:~/sieve;active=~/.dovecot.sieve"},
        extra=("auth_failure_delay = 0\nlogin_trusted_networks = 127.0.0.0/8\n"
               "protocols = imap lmtp sieve\n"
               "service managesieve-login {\n  inet_listener sieve {\n"
               f"    address = 127.0.0.1\n    port = {port}\n  }}\n}}\n"))
    dovecot.sieve_port = port
    return dovecot


def upload(port: int, user: str, script: str) -> None:
    """What Roundcube does when the user saves their out-of-office: PUTSCRIPT, SETACTIVE."""
    with ManageSieve("127.0.0.1", port) as session:
        session.login(user, PASSWORD)
        session.put_script("roundcube", script)
        session.set_active("roundcube")


@pytest.fixture
def site_with_sieve(tmp_path, sieve_server):
    harness = WebHarness(tmp_path, sieve_server.imap_port, managesieve=ClientSieve(
        host="127.0.0.1", port=sieve_server.sieve_port, security="none", timeout=5.0)).start()
    yield harness
    harness.stop()


def notice(page) -> tuple[str, str]:
    m = re.search(r'<section[^>]*id="client-vacation">.*?<p id="client-(\w+)">(.*?)</p>',
                  page.text, re.S)
    assert m, page.text[:3000]
    return m.group(1), html.unescape(re.sub(r"<[^>]+>", "", m.group(2)))


def no_password_anywhere(site, caplog) -> None:
    assert PASSWORD not in caplog.text
    for session in site.web.ctx.sessions._by_id.values():
        assert PASSWORD not in repr(session), session


def test_a_roundcube_vacation_is_shown_after_login_in_french_and_english(site_with_sieve,
                                                                          sieve_server, caplog):
    caplog.set_level(logging.DEBUG)
    upload(sieve_server.sieve_port, ALICE, roundcube_script())
    c = Client(site_with_sieve.url)
    assert c.login(ALICE).status == 200
    fr = c.get("/")  # Alice's language is the organisation's: French
    by, text = notice(fr)
    assert by == "client"
    assert text.startswith("La réponse automatique de votre logiciel de messagerie "
                           "(jusqu'au 2026-12-20) répond aux e-mails, mais les appels ne "
                           "sont pas renvoyés")
    assert "tel que lu à votre connexion, le 2026-12-01 10:00" in text
    en = c.get("/?lang=en")
    by, text = notice(en)
    assert text.startswith("Your mail client's out-of-office (until 2026-12-20) answers mail, "
                           "but calls are not rerouted: set your absence here to reroute "
                           "calls too.")
    assert "as read at your login, 2026-12-01 10:00" in text
    # The user's words, cleaned by display_text and escaped by the template.
    assert "Absente jusqu'au 20 <b>urgent</b>" in text and "\u202e" not in en.text
    assert "<b>urgent</b>" not in en.text and "&lt;b&gt;urgent&lt;/b&gt;" in en.text
    no_password_anywhere(site_with_sieve, caplog)


def test_while_an_absence_here_lasts_the_page_says_its_reply_wins(site_with_sieve,
                                                                  sieve_server):
    upload(sieve_server.sieve_port, ALICE, roundcube_script())
    c = Client(site_with_sieve.url)
    assert c.login(ALICE).status == 200
    page = c.get("/?lang=en")
    r = c.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12"})
    assert r.status == 200 and "Your absence is saved" in r.text
    by, text = notice(r)
    assert by == "mailcall"
    assert text.startswith("Your mail client's out-of-office is on, but while your absence "
                           "here lasts, senders get this page's reply.")


def test_no_script_says_no_out_of_office(site_with_sieve):
    c = Client(site_with_sieve.url)
    assert c.login("bernard@stockinox.example").status == 200
    by, text = notice(c.get("/?lang=en"))
    assert by == "none" and text.startswith("Your mail client has no out-of-office on.")


def test_a_managesieve_that_is_down_does_not_stop_the_login(tmp_path, sieve_server, caplog):
    caplog.set_level(logging.DEBUG)
    down = free_port()  # nothing listens there
    harness = WebHarness(tmp_path, sieve_server.imap_port, managesieve=ClientSieve(
        host="127.0.0.1", port=down, security="none", timeout=2.0)).start()
    try:
        c = Client(harness.url)
        r = c.login(ALICE)
        assert r.status == 200 and r.url.endswith("/")
        by, text = notice(c.get("/?lang=en"))
        assert by == "unknown"
        assert text.startswith("Your mail client's out-of-office could not be read")
        lines = [rec.getMessage() for rec in caplog.records
                 if "out-of-office could not be read" in rec.getMessage()]
        assert len(lines) == 1 and f"127.0.0.1:{down}" in lines[0], lines
        no_password_anywhere(harness, caplog)
    finally:
        harness.stop()


def test_a_wrong_password_reads_nothing(site_with_sieve, sieve_server, caplog):
    caplog.set_level(logging.DEBUG)
    c = Client(site_with_sieve.url)
    r = c.login(ALICE, "not-the-password")
    assert r.status == 401
    assert "out-of-office" not in caplog.text
    assert "not-the-password" not in caplog.text
