"""A store that opened fine and then became unusable (damaged, or its tables gone) while the
page runs: the page turns read-only at the next view, and a change posted from a page shown
before says "Nothing was saved" once.
"""

from __future__ import annotations

import html
import sqlite3

from tests.web.client import Client


def damage(site) -> None:
    """What a bad restore or a stray ``sqlite3`` session does: the tables are gone."""
    db = sqlite3.connect(site.store_path, isolation_level=None)
    try:
        db.execute("DROP TABLE refinements")
        db.execute("DROP TABLE absences")
    finally:
        db.close()


def test_a_store_unreadable_after_start_makes_the_page_read_only(site, caplog):
    c = Client(site.url)
    assert c.login("alice@stockinox.example").status == 200
    before = c.get("/?lang=en")
    assert 'id="absence-form"' in before.text and 'id="save-settings"' in before.text
    damage(site)
    page = c.get("/")
    assert page.status == 200
    assert "cannot be changed right now" in page.text
    for form in ('id="absence-form"', 'id="save-settings"', 'id="pin-form"'):
        assert form not in page.text, form
    assert any("user store cannot be read" in r.getMessage() for r in caplog.records)


def test_a_change_the_store_cannot_write_says_nothing_was_saved_once(site):
    c = Client(site.url)
    assert c.login("alice@stockinox.example").status == 200
    page = c.get("/?lang=en")
    damage(site)
    r = c.post("/absence", {"csrf": page.csrf(), "until": "2026-12-12"})
    assert r.status == 503
    assert r.text.count("Nothing was saved") == 1, r.text
    assert "the settings store cannot be written right now" in r.text
    fr = Client(site.url, language="fr")
    assert fr.login("alice@stockinox.example").status == 200
    page = fr.get("/?lang=fr")
    r = fr.post("/absence/clear", {"csrf": page.csrf(), "id": "1"})
    assert r.status in (400, 503)
    assert html.unescape(r.text).count("Rien n'a été enregistré") == 1, r.text
