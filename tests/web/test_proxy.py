"""docs/web.md's nginx snippet, run by a real nginx: HTTPS in front, the page on loopback.

The snippet (contrib/nginx/mailcall-web.conf) is used as written, with only its ports
and certificate paths replaced; the page keeps its Secure cookies, so the login
works only if the proxy really carries HTTPS to the browser and the page to it.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support import REPO
from tests.support.dovecot import free_port
from tests.web.client import Client
from tests.web.harness import WebHarness

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SNIPPET = REPO / "contrib" / "nginx" / "mailcall-web.conf"


@pytest.fixture
def proxied(tmp_path: Path, imap_server):
    if not Path(NGINX).exists():
        pytest.fail("nginx is not installed: apt-get install -y nginx-light "
                    "(.ci/apt-packages.txt)")
    harness = WebHarness(tmp_path, imap_server.imap_port, secure_cookies=True).start()
    root = tmp_path / "nginx"
    root.mkdir()
    root.chmod(0o777)
    key, cert = root / "key.pem", root / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=calls.example.org", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    https, http = free_port(), free_port()
    site = (SNIPPET.read_text()
            .replace("listen [::]:443 ssl;", "").replace("listen [::]:80;", "")
            .replace("listen 443 ssl;", f"listen 127.0.0.1:{https} ssl;")
            .replace("listen 80;", f"listen 127.0.0.1:{http};")
            .replace("/etc/ssl/certs/calls.example.org.pem", str(cert))
            .replace("/etc/ssl/private/calls.example.org.key", str(key))
            .replace("127.0.0.1:8480", f"127.0.0.1:{harness.web.port}"))
    (root / "site.conf").write_text(site)
    (root / "nginx.conf").write_text(f"""
daemon off;
pid {root}/nginx.pid;
error_log {root}/error.log;
events {{}}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    include {root}/site.conf;
}}
""")
    proc = subprocess.Popen([NGINX, "-p", str(root), "-c", str(root / "nginx.conf")])
    deadline = time.monotonic() + 10
    while not (root / "nginx.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield harness, https, http
    finally:
        proc.terminate()
        proc.wait(10)
        harness.stop()


def test_login_through_the_proxy_over_https(proxied):
    _harness, https, http = proxied
    c = Client(f"https://127.0.0.1:{https}", language="en")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test's own self-signed certificate
    c.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(c.jar),
                                           urllib.request.HTTPSHandler(context=context))
    page = c.login("alice@stockinox.example")
    assert page.status == 200 and "Alice Martin" in page.text, page.text[:500]
    assert page.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert c.cookie("__Host-mailcall")
    r = c.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12", "backup": "bernard"})
    assert r.status == 200 and "absent" in r.text
    # Plain HTTP is sent to HTTPS.
    plain = Client(f"http://127.0.0.1:{http}")
    plain.opener = urllib.request.build_opener(_NoRedirect)
    reply = plain.get("/login")
    assert reply.status == 301 and reply.headers["Location"].startswith("https://")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
