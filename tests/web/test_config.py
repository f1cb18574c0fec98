"""web.toml, the plugin's service switch, the words of both languages, sessions' lifetimes."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import pytest

from mailcall.core.errors import ServiceStartError
from mailcall.core.host.plugin_manager import make_plugin_manager
from mailcall.core.host.runtime import Runtime
from mailcall.core.policy.load import load_policy
from mailcall.plugins import web as plugin
from mailcall.web.config import WebConfigError, load
from mailcall.web.i18n import LANGUAGES, TEXT, negotiate
from mailcall.web.sessions import Sessions
from tests.support import EXAMPLE_POLICY, REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.toml"
    path.write_text(text, "utf-8")
    return path


def test_defaults_are_loopback_and_secure_cookies(tmp_path):
    s = load(write(tmp_path, ""))
    assert (s.host, s.port, s.secure_cookies, s.admins) == ("127.0.0.1", 8480, True, ())
    assert s.imap.host == "127.0.0.1" and s.imap.security == "none"


def test_managesieve_defaults_follow_the_imap_server(tmp_path):
    s = load(write(tmp_path, ""))
    ms = s.managesieve
    assert (ms.enabled, ms.host, ms.port, ms.security) == (True, "127.0.0.1", 4190, "none")
    s = load(write(tmp_path, '[imap]\nhost = "mail.example"\nsecurity = "tls"\n'))
    assert (s.managesieve.host, s.managesieve.security) == ("mail.example", "starttls")
    s = load(write(tmp_path, '[managesieve]\nenabled = false\nhost = "sieve.example"\n'))
    assert not s.managesieve.enabled and s.managesieve.host == "sieve.example"


@pytest.mark.parametrize(("text", "where"), [
    ('[web]\nhost = "0.0.0.0"\nsecure_cookies = false\n', "[web] secure_cookies"),
    ('[imap]\nhost = "mail.example"\n', "[imap] security"),
    ('[web]\nport = 99999\n', "[web] port"),
    ('[web]\nlisten = "x"\n', "[web] listen: unknown key"),
    ('[web]\nadmins = ["nobody"]\n', "[web] admins: 'nobody' not a user"),
    ('[imap]\nlogin = "uid"\n', "[imap] login"),
    ('[imap]\nhost = "mail.example"\nsecurity = "tls"\n[managesieve]\nsecurity = "none"\n',
     "[managesieve] security"),
    ('[managesieve]\nsecurity = "tls"\n', "[managesieve] security"),
    ('[managesieve]\nport = 0\n', "[managesieve] port"),
    ('[cookies]\n', "unknown table"),
    ('[web\n', "not valid TOML"),
])
def test_mistakes_name_the_file_table_and_key(tmp_path, text, where):
    policy = load_policy(EXAMPLE_POLICY)
    with pytest.raises(WebConfigError) as exc:
        load(write(tmp_path, text), users=policy.users)
    assert str(exc.value).startswith(str(tmp_path / "web.toml")) and where in str(exc.value)


def test_the_page_is_off_without_web_toml_and_says_so_once(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv("MAILCALL_WEB_CONFIG", raising=False)
    policy_path = tmp_path / "policy.toml"
    policy_path.write_text(EXAMPLE_POLICY.read_text())
    pm = make_plugin_manager()
    runtime = Runtime(load_policy(policy_path, pm=pm), pm, policy_path=policy_path)
    caplog.set_level(logging.INFO, "mailcall.web")
    assert plugin.mailcall_services(runtime) == []
    assert [r.getMessage() for r in caplog.records].count(
        "web: the employees' page is off (no web.toml beside the policy, no "
        "$MAILCALL_WEB_CONFIG; docs/web.md)") == 1
    # A wrong web.toml stops serve with the reason, no traceback.
    (tmp_path / "web.toml").write_text('[web]\nport = "eighty"\n')
    [service] = plugin.mailcall_services(runtime)
    with pytest.raises(ServiceStartError,
                       match=r"web\.toml:2: \[web\] port: must be a port number 1-65535"):
        asyncio.run(service.start())


def test_every_message_exists_in_both_languages_and_keeps_its_placeholders():
    for key, texts in TEXT.items():
        assert set(texts) == set(LANGUAGES), key
        fields = {lang: sorted(re.findall(r"\{(\w+)\}", t)) for lang, t in texts.items()}
        assert fields["en"] == fields["fr"], key


@pytest.mark.parametrize(("header", "lang"), [
    ("fr-FR,fr;q=0.9,en;q=0.8", "fr"), ("en-GB,en;q=0.9,fr;q=0.8", "en"),
    ("de-DE, fr;q=0.5", "fr"), ("de", "fr"), ("", "fr"), ("fr;q=0, en;q=0.1", "en"),
    ("en;q=abc, fr", "fr"),
])
def test_accept_language(header, lang):
    assert negotiate(header, default="fr") == lang


def test_sessions_expire_idle_and_absolute_and_are_bounded():
    now = [0.0]
    s = Sessions(idle=60, maximum=300, max_sessions=3, clock=lambda: now[0])
    a = s.new("alice")
    now[0] = 59
    assert s.get(a.id) is a
    now[0] = 120
    assert s.get(a.id) is None  # idle for 61 s
    b = s.new("bob")
    for t in range(150, 450, 50):
        now[0] = t
        assert s.get(b.id) is (b if t - 120 <= 300 else None)
    ids = [s.new().id for _ in range(5)]
    assert len(s) == 3 and s.get(ids[0]) is None and s.get(ids[-1]) is not None
    assert not a.csrf_ok(None) and not a.csrf_ok("") and a.csrf_ok(a.csrf)


def test_nginx_snippet_in_docs_is_the_contrib_file():
    conf = (REPO / "contrib" / "nginx" / "mailcall-web.conf").read_text()
    docs = (REPO / "docs" / "web.md").read_text()
    block = re.search(r"```nginx\n(.*?)```", docs, re.S)
    assert block and block.group(1).strip() == conf.strip()
    assert "proxy_pass http://127.0.0.1:8480;" in conf
