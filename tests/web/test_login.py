"""Logging in: real Dovecot passwords, a new session id at login, limits, nothing leaked."""

from __future__ import annotations

import logging

from mailcall.web.app import DECOY_LOGIN, LOGIN_FAILURES
from tests.web.client import Client
from tests.web.harness import WebHarness


def test_wrong_password_refused_right_one_logs_in_with_a_new_session_id(site):
    c = Client(site.url)
    form = c.get("/login")
    anonymous = c.cookie("mailcall")
    assert anonymous
    r = c.post("/login", {"csrf": form.csrf(), "login": "alice@stockinox.example",
                          "password": "nope"})
    assert r.status == 401 and "Wrong address or password." in r.text
    r = c.post("/login", {"csrf": r.csrf(), "login": "alice@stockinox.example",
                          "password": "secret"})
    assert r.status == 200 and r.url.endswith("/") and "Alice Martin" in r.text
    logged_in = c.cookie("mailcall")
    assert logged_in and logged_in != anonymous  # no fixation
    # The id planted before the login (e.g. by an attacker) opens nothing afterwards.
    other = Client(site.url)
    other.jar.set_cookie(_cookie("mailcall", anonymous))
    assert other.get("/").url.endswith("/login")


def test_login_by_user_id_too_and_logout_ends_the_session(site):
    c = Client(site.url)
    assert "Alice Martin" in c.login("alice").text
    sid = c.cookie("mailcall")
    page = c.get("/")
    assert c.post("/logout", {"csrf": page.csrf()}).url.endswith("/login")
    replay = Client(site.url)
    replay.jar.set_cookie(_cookie("mailcall", sid))
    assert replay.get("/").url.endswith("/login")


def test_lockout_after_failures_even_with_the_right_password(site):
    c = Client(site.url)
    for _ in range(LOGIN_FAILURES):
        assert c.login("bernard@stockinox.example", "guess").status == 401
    r = c.login("bernard@stockinox.example", "secret")
    assert r.status == 429 and "Too many failed attempts" in r.text
    # Another account is not locked by bernard's failures.
    assert Client(site.url).login("alice@stockinox.example").status == 200


def test_unknown_logins_are_counted_locked_and_never_reach_dovecot_by_their_name(site):
    asked: list[str] = []
    real = site.web.ctx.check

    def recording(host, port, user, password, **kw):
        asked.append(user)
        return real(host, port, user, password, **kw)

    site.web.ctx.check = recording
    c = Client(site.url)
    # A master-user login string typed by an attacker is not a policy user: refused, and
    # Dovecot is asked about the decoy name only.
    for _ in range(LOGIN_FAILURES):
        assert c.login("alice@stockinox.example*mailcall-mwi", "secret").status == 401
    assert asked == [DECOY_LOGIN] * LOGIN_FAILURES
    assert c.login("alice@stockinox.example*mailcall-mwi", "secret").status == 429


def test_passwords_are_never_logged_nor_stored(site, caplog):
    caplog.set_level(logging.DEBUG)
    c = Client(site.url)
    c.login("alice@stockinox.example", "Typo-Passw0rd")
    c.login("alice@stockinox.example", "secret")
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "alice logged in" in text  # the log does speak of logins
    assert "Typo-Passw0rd" not in text and "secret" not in text.replace("secret_file", "")
    for f in site.store_path.parent.iterdir():
        data = f.read_bytes()
        assert b"Typo-Passw0rd" not in data and b"secret" not in data


def test_mail_server_down_is_not_a_wrong_password_and_not_counted(tmp_path):
    from tests.support.dovecot import free_port

    harness = WebHarness(tmp_path, free_port()).start()  # nothing listens there
    try:
        c = Client(harness.url)
        for _ in range(LOGIN_FAILURES + 1):
            r = c.login("alice@stockinox.example")
            assert r.status == 503 and "cannot check passwords" in r.text
        assert harness.web.ctx.login_guard.locked_for("login:alice@stockinox.example") == 0
    finally:
        harness.stop()


def test_cookie_attributes_behind_the_proxy(tmp_path, imap_server):
    harness = WebHarness(tmp_path, imap_server.imap_port, secure_cookies=True).start()
    try:
        r = Client(harness.url).get("/login")
        cookie = r.headers["Set-Cookie"]
        assert cookie.startswith("__Host-mailcall=")
        for attribute in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/"):
            assert attribute in cookie, cookie
        assert "Domain" not in cookie
    finally:
        harness.stop()


def _cookie(name: str, value: str):
    import http.cookiejar

    return http.cookiejar.Cookie(0, name, value, None, False, "127.0.0.1", False, False, "/",
                                 True, False, None, False, None, None, {})


def test_dovecot_is_told_the_browsers_address_not_mailcalls(site, imap_server):
    c = Client(site.url)
    proxy = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # the last one: our proxy's
    form = c.get("/login", headers=proxy)
    r = c.post("/login", {"csrf": form.csrf(), "login": "alice@stockinox.example",
                          "password": "secret"}, headers=proxy)
    assert r.status == 200
    log = imap_server.log_text()
    assert "user=<alice@stockinox.example>" in log and "rip=203.0.113.7" in log, log[-2000:]
    # Its failures are counted for that address, not for mailcall's own.
    c.post("/login", {"csrf": r.csrf(), "login": "nobody", "password": "x"}, headers=proxy)
    guard = site.web.ctx.address_guard
    assert guard._failures.get("address:203.0.113.7") and not guard._failures.get(
        "address:127.0.0.1")


def test_one_guessers_failures_do_not_slow_dovecot_for_everyone(site, imap_server):
    # Dovecot delays logins per remote address after failures (its auth penalty). Every
    # check comes from mailcall's own address: without the browser's address in ID,
    # one guesser would make every employee's login wait up to 15 s.
    import subprocess

    from tests.support.dovecot import DOVEADM

    c = Client(site.url)
    for _ in range(2):
        c.post("/login", {"csrf": c.get("/login").csrf(), "login": "alice@stockinox.example",
                          "password": "guess"}, headers={"X-Forwarded-For": "203.0.113.9"})
    penalties = subprocess.run([DOVEADM, "-c", str(imap_server.conf), "penalty"],
                               capture_output=True, text=True, check=True).stdout
    assert "203.0.113.9" in penalties and "127.0.0.1" not in penalties, penalties
