"""An answer outlives the tab that asked for it (chatui/streaming.py `outlive`).

Reloading or closing the page mid-answer makes Gradio cancel the event. That used to end the
answer too, stored as "⏹️ Stopped." although nobody pressed Stop. Now the model goes on
writing, the store keeps the text as it grows, the reloaded page follows it to its end, and
the answer is stored complete with the model's own finish reason. (The Stop button still
stores "stopped": tests/test_browser_chat.py, tests/test_browser.py.)

Real parts: `python app.py`, SQLite, Chromium and gradio_client, over the OpenAI-wire fake
(tests/wire.py) slowed to a few seconds per answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import time

import pytest

from chatui.render import STOPPED_MARK
from tests.conftest import start_app, stop_process
from tests.wire import FOLLOW_APP_CONFIG, LAST_BOT, WireServer


TOKENS = 100                      # at 0.05 s each: about 5 s per answer


# The asyncio tests come first: the module's Chromium (Playwright's sync API) runs an event
# loop of its own until the module ends, and an asyncio test cannot run beside it.

async def test_the_relay_can_go_the_source_runs_to_its_end():
    from chatui.streaming import outlive

    made, ended, tasks = [], asyncio.Event(), set()

    async def source():
        try:
            for i in range(5):
                await asyncio.sleep(0.02)
                made.append(i)
                yield i
        finally:
            ended.set()

    async def watch():
        async for item in outlive(source(), tasks):
            assert item == 0
            await asyncio.sleep(10)               # a slow page; then its tab goes away

    watcher = asyncio.create_task(watch())
    while not made:
        await asyncio.sleep(0.01)
    watcher.cancel()                              # what Gradio does on a closed tab
    await asyncio.wait_for(ended.wait(), 5)
    assert made == [0, 1, 2, 3, 4]
    await asyncio.sleep(0)
    assert not tasks                              # the finished task is let go


async def test_the_relay_raises_what_the_source_raised():
    from chatui.streaming import outlive

    async def source():
        yield 1
        raise ValueError("the model server went away")

    got = []
    with pytest.raises(ValueError, match="went away"):
        async for item in outlive(source(), set()):
            got.append(item)
    assert got == [1]


def handlers_over(url: str, tmp_path):
    """The app's Handlers on a SQLite store, with one model: the wire server at `url`."""
    from backends.base import GenerationParams
    from backends.remote import RemoteBackend
    from chatui.chat import ChatService
    from chatui.config import Settings
    from chatui.handlers import Handlers
    from chatui.history import History
    from chatui.store import Store

    settings = Settings.model_validate({"models": [
        {"name": "wire", "type": "openai", "endpoint_url": url + "/v1",
         "context_length": 4096}]})
    backend = RemoteBackend("wire", url + "/v1", context_length=4096,
                            defaults=GenerationParams(max_new_tokens=1000))
    store = Store(tmp_path / "chat.db")
    return Handlers(ChatService(settings, {"wire": backend}), History(store)), store


async def test_an_answer_whose_tab_is_gone_can_still_be_stopped_from_its_conversation(
        wire_server, tmp_path):
    """A page that follows the answer after a reload has no event of its own: it stops the
    answer by its conversation (`Handlers.stop_conversation`), which only its user can."""
    wire_server.config.tokens, wire_server.config.delay = 400, 0.02
    h, store = handlers_over(wire_server.url, tmp_path)
    token, other = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    outputs = h.chat("Hello", "", "wire", "", 0.7, 0.9, 1000, False, token, None, request=None)
    first = await outputs.__anext__()
    await outputs.aclose()                                # the tab is gone
    session = {"conv": first[2]["conversation_id"]}
    await asyncio.sleep(0.5)
    await h.stop_conversation(other, session)            # someone else's: nothing happens
    await asyncio.sleep(0.3)
    assert h._writing
    await h.stop_conversation(token, session)
    await asyncio.wait_for(h.settle(), 10)
    last = store.branch(h.user(token), session["conv"])[-1]
    assert last["finish_reason"] == "stopped" and 0 < last["content"].count("tok") < 400
    store.close()


async def test_only_a_page_that_follows_an_answer_gets_its_input_changed(wire_server, tmp_path):
    """`Sidebar.watch` runs after every page load. It used to send the input back to Send
    whenever the page was not following an answer, and when a fast user had already sent a
    message, that update landed under their own answer: Stop turned into Send mid-answer (and
    Chromium tests waiting for Stop timed out). Now the input is touched only to show Stop
    while following and to take it back when following ends."""
    from types import SimpleNamespace

    import gradio as gr

    from chatui.sidebar import Sidebar

    wire_server.config.tokens, wire_server.config.delay = 60, 0.02
    h, store = handlers_over(wire_server.url, tmp_path)
    sb = Sidebar(h)
    token = secrets.token_urlsafe(32)
    page = SimpleNamespace(session_hash="page-1")
    skip = gr.skip()

    timer, box = sb.watch(token, None, page)             # a fresh page: nothing to follow
    assert box == skip and not timer.active

    outputs = h.chat("Hello", "", "wire", "", 0.7, 0.9, 1000, False, token, None, request=None)
    first = await outputs.__anext__()
    await outputs.aclose()                                # its tab is gone; the answer goes on
    session = {"conv": first[2]["conversation_id"]}
    timer, box = sb.watch(token, session, page)          # this page opens it: follows it
    assert timer.active and box.stop_btn and not box.submit_btn
    await asyncio.wait_for(h.settle(), 10)
    *_, timer, box = sb.refresh_writing(token, session, page)   # it ended: back to Send
    assert not timer.active and box.submit_btn and not box.stop_btn
    assert sb.watch(token, session, page)[1] == skip     # the page's own sends own it now
    assert sb.watch(token, None, SimpleNamespace(session_hash="page-2"))[1] == skip
    store.close()


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("outlive")
    with WireServer() as wire:
        wire.config.tokens, wire.config.token_text, wire.config.delay = TOKENS, "word ", 0.05
        proc, url = start_app(tmp, FOLLOW_APP_CONFIG.format(url=wire.url))
        try:
            yield url, str(tmp / "chat.db")
        finally:
            stop_process(proc)


def answers(db: str, conv_id: str | None = None) -> list[dict]:
    """The stored answers (newest last), of one conversation or all."""
    with sqlite3.connect(db) as con:
        con.row_factory = sqlite3.Row
        sql = "SELECT conversation_id, content, finish_reason FROM messages WHERE role = " \
              "'assistant'" + (" AND conversation_id = ?" if conv_id else "") + \
              " ORDER BY created_at"
        return [dict(r) for r in con.execute(sql, [conv_id] if conv_id else [])]


def stored_when_done(db: str, conv_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = answers(db, conv_id)
        if rows and rows[-1]["finish_reason"] is not None:
            return rows[-1]
        time.sleep(0.1)
    raise AssertionError("the answer was never finished in the store")



@contextlib.contextmanager
def reloaded_mid_answer(browser, url: str, text: str):
    """A page of a fresh browser context that asked `text` and was reloaded while the answer
    streamed (Gradio cancels the event there); the context is closed afterwards."""
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#input textarea", timeout=30_000)
        page.fill("#input textarea", text)
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => ({LAST_BOT})().split('word').length > 10",
                               timeout=30_000)
        page.reload()
        yield page
    finally:
        context.close()


def conversation_in_address(page) -> str:
    conv_id = page.evaluate("() => new URLSearchParams(location.search).get('c')")
    assert conv_id, "the address names no conversation"
    return conv_id


@pytest.mark.slow
@pytest.mark.browser
def test_a_reload_mid_answer_shows_it_continue_and_end_complete(app, browser):
    url, db = app
    with reloaded_mid_answer(browser, url, "Tell me a long story.") as page:
        page.wait_for_selector("#input textarea", timeout=30_000)
        page.wait_for_function(f"() => ({LAST_BOT})().includes('word')", timeout=30_000)
        after_reload = page.evaluate(LAST_BOT).count("word")
        assert 0 < after_reload < TOKENS, "the answer had ended before the reload"
        # No click from here on: the answer keeps growing, then ends complete.
        page.wait_for_function(f"() => ({LAST_BOT})().split('word').length - 1 > "
                               f"{after_reload}", timeout=30_000)
        page.wait_for_function(
            f"() => ({LAST_BOT})().split('word').length - 1 === {TOKENS}"
            f" && !({LAST_BOT})().includes('Still being written')", timeout=30_000)
        assert "Stopped" not in page.evaluate(LAST_BOT)
        stored = stored_when_done(db, conversation_in_address(page))
        assert stored["finish_reason"] in ("stop", "length"), stored["finish_reason"]
        assert stored["content"].count("word") == TOKENS
        assert STOPPED_MARK not in stored["content"]


@pytest.mark.slow
def test_a_cancelled_api_job_still_gets_its_answer_stored_complete(app):
    from gradio_client import Client

    url, db = app
    token = secrets.token_urlsafe(32)
    client = Client(url, verbose=False)
    job = client.submit("Another long story, please.", "", "wire", "", 0.7, 0.9, 1000, False,
                        token, api_name="/chat")
    info, deadline = None, time.monotonic() + 30
    while info is None and time.monotonic() < deadline:
        outs = job.outputs()
        if outs and "word word word" in str(outs[-1][0]):
            info = outs[-1][1]
        time.sleep(0.05)
    assert info, "no streamed text to cancel"
    job.cancel()                                          # what a closed connection does
    conv_id = info["conversation_id"]
    time.sleep(1.0)
    growing = answers(db, conv_id)[-1]
    assert growing["finish_reason"] is None               # still being written, kept so far
    stored = stored_when_done(db, conv_id)
    assert stored["finish_reason"] in ("stop", "length"), stored["finish_reason"]
    assert stored["content"].count("word") == TOKENS


@pytest.mark.slow
@pytest.mark.browser
def test_a_reloaded_page_can_stop_the_answer_it_follows(app, browser):
    url, db = app
    with reloaded_mid_answer(browser, url, "A story to stop after a reload.") as page:
        page.wait_for_selector("#input .stop-button", timeout=30_000)   # following: Stop
        page.click("#input .stop-button")
        page.wait_for_selector("#input .submit-button", timeout=30_000)  # and back to Send
        stored = stored_when_done(db, conversation_in_address(page))
        assert stored["finish_reason"] == "stopped", stored["finish_reason"]
        assert 0 < stored["content"].count("word") < TOKENS
        page.wait_for_function(f"() => ({LAST_BOT})().includes('Stopped')", timeout=15_000)
        # The next message goes through at once (no answer left holding a slot).
        page.fill("#input textarea", "And now something else.")
        page.keyboard.press("Enter")
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"user\"]')]"
                               ".some(u => u.innerText.includes('something else'))",
                               timeout=15_000)
