"""The chat list's date headings follow the viewer's calendar day, not the server's (issue 11:
"Today" for someone in Kiritimati is not "Today" on a UTC server). Real Chromium with
Playwright's `timezone_id`, against `python app.py` on a real SQLite file (model: the
OpenAI-wire fake), the server's own zone pinned to UTC."""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from tests.conftest import start_app, stop_process
from tests.wire import APP_CONFIG, WireServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

EAST, WEST = "Pacific/Kiritimati", "Etc/GMT+12"      # UTC+14 and UTC-12: 26 hours apart


def label(t: float, now: float, zone: str) -> str:
    """The heading a person in `zone` expects for a chat last touched at `t`."""
    z = ZoneInfo(zone)
    age = (datetime.fromtimestamp(now, z).date() - datetime.fromtimestamp(t, z).date()).days
    return "Today" if age <= 0 else "Yesterday" if age == 1 else \
        "Previous 7 days" if age <= 7 else "Older"


def heading(page) -> str:
    page.wait_for_function(
        "() => { const l = document.querySelector('#conversations label');"
        " return l && getComputedStyle(l, '::before').content.startsWith(String.fromCharCode(34)); }",
        timeout=20_000)
    return page.evaluate("() => getComputedStyle(document.querySelector("
                         "'#conversations label'), '::before').content").strip('"')


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tz-app")
    with WireServer() as wire:
        wire.config.tokens, wire.config.token_text = 4, "answer "
        proc, url = start_app(tmp, APP_CONFIG.format(url=wire.url), extra_env={"TZ": "UTC"})
        try:
            yield url, tmp / "chat.db"
        finally:
            stop_process(proc)


def test_headings_are_the_viewers_day(app, browser):
    url, db = app
    ctx = browser.new_context(viewport={"width": 1440, "height": 900}, timezone_id=EAST)
    page = ctx.new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.fill("#input textarea", "A chat to date")
    page.keyboard.press("Enter")
    page.wait_for_selector("#conversations label", timeout=30_000)
    page.wait_for_selector("#input .submit-button", timeout=60_000)
    # A last-touched time the two viewers put on different days (one exists within 24 h,
    # whatever the hour now); written straight into the store's file.
    now = time.time()
    t = next(now - h * 1800 for h in range(1, 48)
             if label(now - h * 1800, now, EAST) != label(now - h * 1800, now, WEST))
    with sqlite3.connect(db) as con:
        assert con.execute("UPDATE conversations SET updated_at = ?", (t,)).rowcount == 1
    state = ctx.storage_state()                          # the same browser identity
    seen = {}
    for zone in (EAST, WEST):
        other = browser.new_context(viewport={"width": 1440, "height": 900},
                                    timezone_id=zone, storage_state=state)
        p = other.new_page()
        p.goto(url)
        seen[zone] = heading(p)
        other.close()
    ctx.close()
    assert seen == {EAST: label(t, now, EAST), WEST: label(t, now, WEST)}, \
        (datetime.fromtimestamp(t, ZoneInfo("UTC")), seen)
    assert seen[EAST] != seen[WEST]
