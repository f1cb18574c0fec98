"""The employees' page as ``mailcall serve`` runs it, and a chromium to use it.

For tests that start ``mailcall serve`` themselves (tests/live): the web.toml
that turns the page on beside their policy, the address the page says it listens
on (its log line), and a headless Debian chromium driven by selenium, as
tests/web/test_browser.py drives it.
"""

from __future__ import annotations

import contextlib
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service

from tests.support.asterisk import free_port
from tests.support.waiting import wait_until

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
LISTENS = re.compile(r"web: the employees' page listens on (http://[^/\s]+)/")
"""The line the web service logs once its socket is bound (mailcall.web.service)."""


def write_web_toml(policy_path: Path, imap_port: int, *, port: int | None = None,
                   admins: tuple[str, ...] = ()) -> Path:
    """web.toml beside `policy_path` (docs/web.md): loopback, plain-HTTP cookies (a test
    without HTTPS), passwords checked by the IMAP server at `imap_port`; a free port
    unless `port` (web.toml refuses 0; :func:`page_url` reads back the one in use)."""
    port = port or free_port()
    lines = ["[web]", 'host = "127.0.0.1"', f"port = {port}", "secure_cookies = false"]
    if admins:
        lines.append("admins = [" + ", ".join(f'"{a}"' for a in admins) + "]")
    lines += ["", "[imap]", 'host = "127.0.0.1"', f"port = {imap_port}", 'security = "none"',
              "timeout = 10"]
    path = policy_path.with_name("web.toml")
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def page_url(log: Callable[[], str], timeout: float = 15.0) -> str:
    """The page's base URL, from the serving process's log (`log` returns it so far)."""
    found = wait_until(lambda: LISTENS.search(log()), timeout)
    assert found, ("mailcall serve did not log that the employees' page listens (is web.toml "
                   f"beside the policy?); its log:\n{log()[-4000:]}")
    return found.group(1)


@contextlib.contextmanager
def chromium(language: str = "en") -> Iterator[webdriver.Chrome]:
    """Debian's chromium, headless, whose Accept-Language is `language`."""
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.fail("chromium and chromium-driver are not installed: run "
                    "`apt-get install -y chromium chromium-driver` (.ci/apt-packages.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1400", f"--lang={language}"):
        options.add_argument(arg)
    options.add_experimental_option("prefs", {"intl.accept_languages": language})
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    except WebDriverException as exc:
        pytest.fail(f"chromium could not be started by {DRIVER}: {exc.msg}")
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
