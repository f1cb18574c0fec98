"""The page in a real browser: Debian's chromium, headless, driven by selenium.

Logs in with real Dovecot credentials, sets an absence with the keyboard and the
form's controls, and sees the call plan sentence change; a bad date is refused
next to its field; IT's view shows the change in the audit log. Screenshots of the
main pages are kept under build/test-artifacts/web/ (printed by the test).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

from mailcall.userstore.sqlite_store import SqliteStore
from tests.support import REPO
from tests.web.harness import HOSTILE_GROUP

ARTIFACTS = REPO / "build" / "test-artifacts" / "web"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture
def browser():
    if not (Path(CHROMIUM).exists() and Path(DRIVER).exists()):
        pytest.fail("chromium and chromium-driver are not installed: run "
                    "`apt-get install -y chromium chromium-driver` (.ci/apt-packages.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,1400", "--lang=fr-FR"):
        options.add_argument(arg)
    # What a French-speaking employee's browser sends as Accept-Language.
    options.add_experimental_option("prefs", {"intl.accept_languages": "fr-FR,fr"})
    try:
        driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    except WebDriverException as exc:
        pytest.fail(f"chromium could not be started by {DRIVER}: {exc.msg}")
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def shot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # The whole page, not only the window: the plan, the form and the settings table.
    driver.set_window_size(1100, 900)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1100, max(900, int(height) + 40))
    driver.execute_script("window.scrollTo(0, 0)")  # a page reached by an #anchor is scrolled
    assert driver.save_screenshot(str(path)), f"no screenshot written to {path}"
    print(f"screenshot: {path}")
    return path


def navigates(driver, act) -> None:
    """Do `act` (a click, an Enter) and wait until the next page has replaced this one:
    reading right after a submit could find the old page's elements (stale)."""
    old = driver.find_element(By.TAG_NAME, "html")
    act()
    WebDriverWait(driver, 15).until(lambda d: _gone(old))


def _gone(element) -> bool:
    # Chromium reports a replaced page's node as stale, or (mid-navigation) as "does not
    # belong to the document": both mean the old page is gone.
    try:
        element.is_enabled()
    except WebDriverException:
        return True
    return False


def plan_text(driver) -> str:
    return driver.find_element(By.ID, "plan").text


def test_login_set_absence_plan_changes(site, browser):
    b = browser
    b.get(site.url + "/")
    assert b.current_url.endswith("/login")
    assert b.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"  # Accept-Language
    shot(b, "login")

    # Keyboard only: the label names the field, Tab moves on, Enter submits.
    user = b.find_element(By.ID, "login")
    assert b.switch_to.active_element == user  # autofocus
    user.send_keys("alice@stockinox.example", Keys.TAB)
    navigates(b, lambda: b.switch_to.active_element.send_keys("wrong password", Keys.ENTER))
    assert "Adresse ou mot de passe incorrect." in b.find_element(By.ID, "login-error").text
    navigates(b, lambda: b.find_element(By.ID, "password").send_keys("secret", Keys.ENTER))

    before = plan_text(b)
    assert before == ("Votre poste sonne pendant 20 s. Si vous ne répondez pas dans les 20 s : "
                      f"votre mobile, puis Bernard Petit, puis {HOSTILE_GROUP}, puis la "
                      "messagerie."), before
    # The hostile group name is shown as text, never run: no alert, no injected element.
    assert b.find_elements(By.CSS_SELECTOR, "#plan img") == []
    shot(b, "home")

    # A nonsensical date: refused next to the field, nothing saved, the plan unchanged.
    b.find_element(By.ID, "until").send_keys("2026-02-31")
    navigates(b, lambda: b.find_element(By.ID, "set-absence").click())
    error = b.find_element(By.ID, "err-absence-until")
    # The store's refusal, told in the page's language (web/refusals.py).
    assert error.text == ("'2026-02-31' n'est pas une date : écrivez-la comme 2026-12-12, ou "
                          "2026-12-12 18:00."), error.text
    assert b.find_element(By.ID, "until").get_attribute("aria-invalid") == "true"
    assert plan_text(b) == before
    shot(b, "absence-error")

    until = b.find_element(By.ID, "until")
    until.clear()
    until.send_keys("2026-12-12")
    Select(b.find_element(By.ID, "backup")).select_by_visible_text("Bernard Petit")
    b.find_element(By.ID, "message").send_keys("En congé jusqu'au 12 <b>décembre</b>.")
    navigates(b, lambda: b.find_element(By.ID, "set-absence").click())

    after = plan_text(b)
    assert after == ("Vous êtes absent·e jusqu'au 2026-12-12 00:00 : votre poste ne sonne pas. "
                     f"Les appels vont vers : Bernard Petit, puis {HOSTILE_GROUP}, puis la "
                     "messagerie avec votre annonce d'absence."), after
    listed = b.find_element(By.ID, "absences").text
    assert "Bernard Petit" in listed and "<b>décembre</b>" in listed  # shown as typed, inert
    assert b.find_elements(By.CSS_SELECTOR, "#absences b") == []
    shot(b, "home-absent")

    store = SqliteStore(site.store_path)
    try:
        entries = store.audit("alice")
    finally:
        store.close()
    assert [(e.field, e.stamp.origin, e.stamp.actor) for e in entries] == [
        ("absence", "web", "alice")]

    # Removing it puts the plan back as it was.
    navigates(b, lambda: b.find_element(By.CSS_SELECTOR, "#absences button").click())
    assert plan_text(b) == before

    # IT's view (david is the admin of the harness), in English by the user's language.
    navigates(b, lambda: b.find_element(By.CSS_SELECTOR, "form[action='/logout'] button").click())
    b.find_element(By.ID, "login").send_keys("david@stockinox.example")
    navigates(b, lambda: b.find_element(By.ID, "password").send_keys("secret", Keys.ENTER))
    navigates(b, lambda: b.find_element(By.LINK_TEXT, "IT view").click())
    assert b.find_element(By.ID, "refined-h").text == "Users with settings of their own: 0"
    rows = b.find_elements(By.CSS_SELECTOR, "#audit tbody tr")
    assert len(rows) == 2 and all("alice" in r.text and "web" in r.text for r in rows)
    shot(b, "admin")


def test_settings_notification_and_backup_order_then_a_refusal_in_french(site, browser):
    b = browser
    b.get(site.url + "/login")
    b.find_element(By.ID, "login").send_keys("alice@stockinox.example")
    navigates(b, lambda: b.find_element(By.ID, "password").send_keys("secret", Keys.ENTER))
    assert b.find_element(By.TAG_NAME, "html").get_attribute("lang") == "fr"
    before = plan_text(b)
    assert before.endswith(f"votre mobile, puis Bernard Petit, puis {HOSTILE_GROUP}, puis la "
                           "messagerie."), before
    assert b.find_element(By.ID, "now-notify-mail").text == "Actuellement : oui"

    # A notification switched off, and the reception rung before Bernard.
    mail = b.find_element(By.ID, "f-notify-mail")
    assert mail.is_selected()
    mail.click()
    Select(b.find_element(By.ID, "f-backups-1")).select_by_visible_text("2")  # Bernard
    Select(b.find_element(By.ID, "f-backups-2")).select_by_visible_text("1")  # reception
    assert b.find_elements(By.CSS_SELECTOR, "#settings-form img") == []  # hostile name: text
    navigates(b, lambda: b.find_element(By.ID, "save-settings").click())
    assert "Vos réglages sont enregistrés" in b.find_element(By.CSS_SELECTOR, ".flash.ok").text
    assert b.find_element(By.ID, "now-notify-mail").text == "Actuellement : non"
    assert b.find_element(By.ID, "now-backups").text == (
        f"Actuellement : {HOSTILE_GROUP}, Bernard Petit")
    after = plan_text(b)
    assert after == ("Votre poste sonne pendant 20 s. Si vous ne répondez pas dans les 20 s : "
                     f"votre mobile, puis {HOSTILE_GROUP}, puis Bernard Petit, puis la "
                     "messagerie."), after
    assert not b.find_element(By.ID, "f-notify-mail").is_selected()
    shot(b, "settings")

    # Unticking every medium is refused by the store: told in French next to the field.
    for box in ("f-notify-media-sms", "f-notify-media-email"):
        b.find_element(By.ID, box).click()
    navigates(b, lambda: b.find_element(By.ID, "save-settings").click())
    message = b.find_element(By.ID, "err-notify-media").text
    assert message.startswith("Cochez au moins un moyen de notification"), message
    field = b.find_element(By.CSS_SELECTOR, "#setting-notify-media fieldset")
    assert field.get_attribute("aria-invalid") == "true"
    assert field.get_attribute("aria-describedby") == "err-notify-media"
    # The message is inside that setting's block, right under its boxes.
    assert b.find_element(By.CSS_SELECTOR, "#setting-notify-media #err-notify-media")
    assert plan_text(b) == after
    shot(b, "settings-error")

    store = SqliteStore(site.store_path)
    try:
        entries = store.audit("alice")
        values = {k: v.value for k, v in store.read("alice").values.items()}
    finally:
        store.close()
    assert sorted(e.field for e in entries) == ["backups", "notify.mail"]  # nothing more
    assert values == {"notify.mail": False, "backups": ["@reception", "bernard"]}
