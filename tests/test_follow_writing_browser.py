"""An answer being written is followed by every page showing its conversation, in Chromium.

A reload during an answer (or after the replica writing it died) used to show "Still being
written…" until the user clicked something. Two tabs of one browser (one identity): tab A
asks for a long answer; tab B opens the same conversation by its address mid-answer and,
without a click, shows the answer growing and then finished. (The dead-replica case, where
the answer turns "interrupted", is tests/test_replicas.py's browser test.)
"""

from __future__ import annotations

import re

import pytest

from chatui.render import WRITING_MARK
from tests.conftest import start_app, stop_process
from tests.wire import FOLLOW_APP_CONFIG, LAST_BOT, WireServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

TOKENS = 160


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with WireServer() as wire:
        wire.config.tokens, wire.config.token_text, wire.config.delay = TOKENS, "word ", 0.05
        proc, url = start_app(tmp_path_factory.mktemp("follow"), FOLLOW_APP_CONFIG.format(url=wire.url))
        try:
            yield url
        finally:
            stop_process(proc)


def test_a_second_tab_follows_the_answer_until_it_is_finished(app_url, browser):
    context = browser.new_context()
    try:
        a = context.new_page()
        a.goto(app_url)
        a.wait_for_selector("#input textarea", timeout=30_000)
        a.fill("#input textarea", "Tell me a long story.")
        a.keyboard.press("Enter")
        a.wait_for_function(f"() => ({LAST_BOT})().split('word').length > 20",
                            timeout=30_000)
        address = a.evaluate("() => window.location.href")
        assert re.search(r"\?c=[0-9a-f]{32}$", address), address

        b = context.new_page()
        b.goto(address)                                   # mid-answer, by its address
        b.wait_for_function(f"() => ({LAST_BOT})().includes('Still being written')",
                            timeout=30_000)
        early = b.evaluate(LAST_BOT).count("word")
        assert 0 < early < TOKENS                         # the text saved so far
        # No click in tab B from here on: it shows the answer as it grows, then finished.
        b.wait_for_function(f"() => ({LAST_BOT})().split('word').length - 1 > {early}",
                            timeout=30_000)
        b.wait_for_function(
            f"() => ({LAST_BOT})().split('word').length - 1 === {TOKENS}"
            f" && !({LAST_BOT})().includes('Still being written')", timeout=30_000)
        assert WRITING_MARK.strip("⏳ *") not in b.evaluate(LAST_BOT)
        assert a.evaluate(LAST_BOT).count("word") == TOKENS
    finally:
        context.close()
