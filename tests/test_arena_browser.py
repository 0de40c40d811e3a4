"""A full battle in Chromium against the real app: two wire-format model servers with
different answers, both columns stream at once, the names stay out of the Arena tab until the
vote, appear after it, the vote is stored, and a follow-up continues both sides."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.conftest import start_app, stop_process
from tests.test_arena_api import CONFIG, NAMES
from tests.wire import WireServer

pytestmark = pytest.mark.slow

TOKENS = 40
ADMIN = "arena-admin-" + "z" * 24


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arena-browser")
    with WireServer() as wa, WireServer() as wb:
        for wire, text in ((wa, "apple "), (wb, "banana ")):
            wire.config.token_text, wire.config.tokens, wire.config.delay = text, TOKENS, 0.05
        proc, url = start_app(tmp, CONFIG.format(a=NAMES[0], b=NAMES[1], url_a=wa.url,
                                                 url_b=wb.url),
                              extra_env={"CHATUI_ADMIN_TOKEN": ADMIN})
        yield url, tmp / "chat.db"
        stop_process(proc)


def column_text(page, side: str) -> str:
    return " ".join(page.locator(f"#arena-{side} [data-testid='bot']").all_inner_texts())


def open_arena(page, url):
    page.goto(url)
    page.click("button[role='tab']:has-text('Arena')")
    page.wait_for_selector("#arena-input textarea", timeout=30_000)


def test_full_battle_in_the_browser(browser, app):
    url, db = app
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_arena(page, url)
    page.fill("#arena-input textarea", "Which fruit is best?")
    page.keyboard.press("Enter")
    # Both columns stream at once: seen while neither answer is complete.
    both_partial = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        a, b = column_text(page, "a"), column_text(page, "b")
        counts = (a + b).count("apple"), (a + b).count("banana")
        if all(0 < n < TOKENS for n in counts):
            both_partial = True
            break
        if min(counts) >= TOKENS:
            break
        time.sleep(0.05)
    assert both_partial, "the two answers did not stream at the same time"
    page.wait_for_selector("#arena-vote-a:not([disabled])", timeout=60_000)
    a, b = column_text(page, "a"), column_text(page, "b")
    assert {a.count("apple") + b.count("apple"), a.count("banana") + b.count("banana")} == \
        {TOKENS}
    arena_html = page.inner_html("#arena-tab")
    for name in NAMES:                      # not in the tab, not in the labels, before the vote
        assert name not in arena_html
    a_is_apple = "apple" in a
    page.click("#arena-vote-a")
    page.wait_for_selector(f"#arena-reveal:has-text('{NAMES[0]}')", timeout=15_000)
    reveal = page.inner_text("#arena-reveal")
    expected_a = NAMES[0] if a_is_apple else NAMES[1]
    assert f"Model A: {expected_a}" in reveal and "A is better" in reveal
    con = sqlite3.connect(db)
    rows = con.execute("SELECT t.winner, b.model_a FROM battle_turns t "
                       "JOIN battles b ON b.id = t.battle_id").fetchall()
    con.close()
    assert rows == [("model_a", expected_a)]
    # A follow-up continues both conversations; the vote buttons come back for it.
    page.fill("#arena-input textarea", "And the second best?")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.querySelectorAll('#arena-a [data-testid=\"user\"]').length == 2 && "
        "document.querySelectorAll('#arena-b [data-testid=\"user\"]').length == 2",
        timeout=30_000)
    page.wait_for_selector("#arena-vote-b:not([disabled])", timeout=60_000)
    assert column_text(page, "a").count("apple" if a_is_apple else "banana") == 2 * TOKENS
    # New battle: empty columns, anonymous labels again.
    page.click("#arena-new")
    page.wait_for_function("() => !document.querySelector('#arena-a [data-testid=\"user\"]')",
                           timeout=15_000)
    assert all(n not in page.inner_html("#arena-tab") for n in NAMES)
    page.context.close()


def test_columns_stack_on_a_phone(browser, app):
    url, _ = app
    for width, stacked in ((1280, False), (390, True)):
        page = browser.new_context(viewport={"width": width, "height": 844}).new_page()
        open_arena(page, url)
        a = page.locator("#arena-a").bounding_box()
        b = page.locator("#arena-b").bounding_box()
        if stacked:
            assert b["y"] >= a["y"] + a["height"] - 1 and b["width"] > 300
        else:
            assert abs(a["y"] - b["y"]) < 2 and b["x"] >= a["x"] + a["width"] - 1
        page.context.close()


def test_leaderboard_in_the_feedback_tab(browser, app):
    """After the battle above: the operator sees both models rated and the win-rate matrix."""
    url, _ = app
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.goto(url)
    page.click("button[role='tab']:has-text('Feedback')")
    page.fill("#admin-token input", ADMIN)
    page.click("#feedback-unlock-button")
    page.wait_for_selector("#arena-win-rates", timeout=30_000)
    table = page.inner_text("#arena-leaderboard")
    assert NAMES[0] in table and NAMES[1] in table
    matrix = page.inner_text("#arena-win-matrix")
    assert "1.00" in matrix and "0.00" in matrix and "n=1" in matrix
    page.context.close()


def test_stop_ends_both_answers_and_only_a_tie_remains(browser, app):
    url, _ = app
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    open_arena(page, url)
    page.fill("#arena-input textarea", "Tell me a long story.")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => ['a', 'b'].every(s => (document.querySelector(`#arena-${s} [data-testid=bot]`)"
        " || {}).innerText?.includes('a'))", timeout=30_000)
    page.click("#arena-input .stop-button")
    page.wait_for_selector("#arena-vote-tie:not([disabled])", timeout=30_000)
    for side in ("a", "b"):
        assert "Stopped" in column_text(page, side)
        text = column_text(page, side)
        assert text.count("apple") + text.count("banana") < TOKENS   # cut before the end
    assert page.is_disabled("#arena-vote-a") and page.is_disabled("#arena-vote-b")
    assert page.is_enabled("#arena-vote-bad")
    assert "only be a tie or both bad" in page.inner_text("#arena-reveal")
    page.context.close()
