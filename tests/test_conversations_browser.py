"""Issue 11 in real Chromium against `python app.py` (model: the OpenAI-wire fake server):
a conversation's address changes when it starts or is opened; reload and Back reopen it;
another browser gets "not found" for it; search finds and opens it; a share link opens in a
fresh browser context without the owner's token, "Continue" copies it, and a revoked link
shows "not found"."""

from __future__ import annotations

import contextlib
import re
import time

import pytest

from tests.conftest import start_app, stop_process
from tests.wire import APP_CONFIG as CONFIG, WireServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CONV_URL = re.compile(r"\?c=[0-9a-f]{32}$")


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    with WireServer() as wire:
        wire.config.tokens, wire.config.token_text = 8, "answer "
        proc, url = start_app(tmp_path_factory.mktemp("conv-browser"),
                              CONFIG.format(url=wire.url))
        try:
            yield url
        finally:
            stop_process(proc)


def open_page(context, url):
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    return page


def send_and_wait(page, text):
    page.fill("#input textarea", text)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "t => [...document.querySelectorAll('[data-testid=\"user\"]')]"
        ".some(u => u.innerText.includes(t))", arg=text, timeout=30_000)
    page.wait_for_selector("#input .submit-button", timeout=60_000)


def chat_shows(page, text, timeout=20_000):
    page.wait_for_function(
        "t => [...document.querySelectorAll('[data-testid=\"user\"]')]"
        ".some(u => u.innerText.includes(t))", arg=text, timeout=timeout)


def chat_lacks(page, text, timeout=20_000):
    page.wait_for_function(
        "t => ![...document.querySelectorAll('[data-testid=\"user\"]')]"
        ".some(u => u.innerText.includes(t))", arg=text, timeout=timeout)


def address(page) -> str:
    # The page's own location (page.url is only refreshed while Playwright handles events).
    return page.evaluate("() => window.location.href")


def wait_url(page, predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate(address(page)):
            return address(page)
        page.wait_for_timeout(100)
    raise AssertionError(f"address never matched: {address(page)}")


def test_address_reload_back_search_and_isolation(app_url, browser):
    owner = browser.new_context(viewport={"width": 1440, "height": 900})
    page = open_page(owner, app_url)
    send_and_wait(page, "Tell me about the okapi")
    first = wait_url(page, lambda u: CONV_URL.search(u))          # a chat starts: its URL
    page.click("#new-chat")
    wait_url(page, lambda u: "?c=" not in u)
    chat_lacks(page, "okapi")
    send_and_wait(page, "Now about the narwhal")
    second = wait_url(page, lambda u: CONV_URL.search(u) and u != first)

    # the chat list is headed by date, the labels themselves stay the titles
    page.wait_for_function("() => getComputedStyle(document.querySelector("
                           "'#conversations label'), '::before').content === '\"Today\"'",
                           timeout=15_000)
    assert "Today" not in page.inner_text("#conversations label >> nth=0")
    page.reload()                                                   # reload reopens it
    page.wait_for_selector("#input textarea", timeout=30_000)
    chat_shows(page, "narwhal")
    assert address(page) == second
    page.go_back()                                                  # Back reopens the first
    wait_url(page, lambda u: u == app_url)
    page.go_back()
    wait_url(page, lambda u: u == first)
    chat_shows(page, "okapi")
    chat_lacks(page, "narwhal")
    page.wait_for_function("() => document.querySelector('#conversations input:checked')"
                           "?.closest('label')?.innerText.includes('okapi')", timeout=10_000)
    page.go_forward()
    page.go_forward()
    wait_url(page, lambda u: u == second)
    chat_shows(page, "narwhal")

    # search: the snippet, then a click opens that conversation and names it in the address
    page.fill("#search textarea, #search input", "okap")
    hit = page.wait_for_selector("#search-results a.chatui-search-hit", timeout=15_000)
    assert "okapi" in hit.inner_text().lower()
    assert page.inner_html("#search-results").count("<mark>") >= 1
    hit.click()
    wait_url(page, lambda u: u == first)
    chat_shows(page, "okapi")

    # another browser (its own token) gets "not found" for the owner's address
    stranger = browser.new_context()
    other = open_page(stranger, first)
    other.wait_for_selector("text=does not exist", timeout=15_000)
    assert "okapi" not in other.inner_text("#chatbot")
    other.fill("#search textarea, #search input", "okapi")
    other.wait_for_selector("#search-results", state="visible", timeout=15_000)
    other.wait_for_selector("text=No conversations match", timeout=15_000)
    stranger.close()
    owner.close()


def test_share_link_fresh_context_continue_and_revoke(app_url, browser):
    owner = browser.new_context(viewport={"width": 1440, "height": 900})
    page = open_page(owner, app_url)
    send_and_wait(page, "Share this question about comets")
    wait_url(page, lambda u: CONV_URL.search(u))
    page.click(".sidebar button:has-text('Share') >> nth=0")
    page.click("#share-conversation")
    page.wait_for_function("() => (document.querySelector('#share-link textarea, #share-link "
                           "input')?.value || '').includes('?share=')", timeout=15_000)
    link = page.eval_on_selector("#share-link textarea, #share-link input", "e => e.value")
    assert link.startswith(app_url.rstrip("/")) and "?share=" in link
    send_and_wait(page, "A later message that is not shared")

    # a fresh context: no token of the owner's, nothing in its localStorage
    viewer_ctx = browser.new_context()
    viewer = open_page(viewer_ctx, link)
    viewer.wait_for_selector("#share-view", state="visible", timeout=15_000)
    chat_shows(viewer, "comets")
    assert "not shared" not in viewer.inner_text("#chatbot")
    assert "answer" in viewer.inner_text("#chatbot")
    viewer.click("#continue-share")
    wait_url(viewer, lambda u: CONV_URL.search(u) and "share=" not in u)
    viewer.wait_for_function("() => document.querySelector('#conversations')"
                             ".innerText.includes('comets')", timeout=15_000)
    copy_url = address(viewer)
    viewer.reload()                                   # the copy is the viewer's own now
    viewer.wait_for_selector("#input textarea", timeout=30_000)
    chat_shows(viewer, "comets")
    assert address(viewer) == copy_url

    # the owner revokes: the link now says "not found"
    page.wait_for_function("() => document.querySelector('#my-links')", timeout=10_000)
    page.click("#my-links input")
    page.get_by_role("option").first.click()
    page.click("#revoke-share")
    time.sleep(1.0)
    gone = open_page(viewer_ctx, link)
    gone.wait_for_selector("text=This shared conversation was not found", timeout=15_000)
    assert "comets" not in gone.inner_text("#chatbot")
    viewer_ctx.close()
    owner.close()


def test_sending_on_a_shared_page_continues_it_in_the_senders_own_copy(app_url, browser):
    """HuggingChat: typing on a shared page continues that conversation (a copy in the
    sender's history, as "Continue this conversation" makes), not a new, unrelated chat."""
    from gradio_client import Client

    client, owner = Client(app_url, verbose=False), "share-send-" + "o" * 40
    out = client.predict("What do pangolins eat?", "", "wire", "", 0.6, 0.9, 32, False, owner,
                         api_name="/chat")
    conv = out[-1]["conversation_id"]
    sid = client.predict(conv, owner, api_name="/share_conversation")
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = open_page(ctx, app_url + "?share=" + sid)
    page.wait_for_selector("#share-view", state="visible", timeout=15_000)
    chat_shows(page, "pangolins")
    send_and_wait(page, "And where do they live?")
    copy_url = wait_url(page, lambda u: CONV_URL.search(u) and "share=" not in u)
    page.wait_for_selector("#share-view", state="hidden", timeout=10_000)
    # the shared exchange, then the new question and its answer, in one chat
    text = page.inner_text("#chatbot")
    assert text.index("pangolins") < text.index("answer") < text.index("where do they live")
    assert text.rindex("answer") > text.index("where do they live")
    # one chat in the sender's list (the copy, named like the share), selected, in the address
    page.wait_for_function("() => document.querySelectorAll('#conversations label').length"
                           " === 1 && document.querySelector('#conversations input:checked')",
                           timeout=10_000)
    assert "pangolins" in page.inner_text("#conversations")
    page.reload()                                     # the copy is the sender's own
    page.wait_for_selector("#input textarea", timeout=30_000)
    chat_shows(page, "where do they live")
    chat_shows(page, "pangolins")
    assert address(page) == copy_url
    # the owner's conversation and the link did not change
    owned = client.predict(conv, owner, api_name="/open_conversation")
    assert "where do they live" not in str(owned)
    shared = client.predict(sid, api_name="/open_share")
    assert "where do they live" not in str(shared["messages"])
    ctx.close()


@contextlib.contextmanager
def titled_app(browser, tmp_path):
    """An app with model-written titles on, over a wire server whose answers (and so its
    titles) read "Lisbon weekend plan"; a desktop page on it."""
    with WireServer() as wire:
        wire.config.tokens, wire.config.token_text = 1, "Lisbon weekend plan "
        proc, url = start_app(tmp_path, CONFIG.format(url=wire.url),
                              extra_env={"CHATUI_AUTO_TITLES": "1"})
        ctx = browser.new_context(viewport={"width": 1440, "height": 900})
        try:
            yield wire, open_page(ctx, url)
        finally:
            ctx.close()
            stop_process(proc)


def test_example_prompt_starts_a_chat_that_gets_a_model_title(browser, tmp_path):
    with titled_app(browser, tmp_path) as (wire, page):
        examples = page.query_selector_all("#chatbot button.example")
        assert len(examples) == 4                       # the configured defaults
        examples[2].click()                             # one click: the chat starts
        chat_shows(page, "Plan a three-day trip to Lisbon.")
        wait_url(page, lambda u: CONV_URL.search(u))
        # after the answer, the model's title replaces the first words in the list
        page.wait_for_function("() => document.querySelector('#conversations')"
                               ".innerText.includes('Lisbon weekend plan')", timeout=20_000)
        assert "Plan a three-day" not in page.inner_text("#conversations")
        asked = [r["messages"][-1]["content"] for r in wire.config.requests]
        assert asked[0] == "Plan a three-day trip to Lisbon."        # the answer first
        assert "title" in asked[1].lower()                           # then the title


def test_editing_the_first_question_gets_the_chat_a_new_model_title(browser, tmp_path):
    with titled_app(browser, tmp_path) as (wire, page):
        send_and_wait(page, "Plan a trip to Lisbon.")
        page.wait_for_function("() => document.querySelector('#conversations')"
                               ".innerText.includes('Lisbon weekend plan')", timeout=20_000)
        wire.config.token_text = "Porto food tour "
        page.click('#chatbot button[aria-label="Edit"]')
        edit = page.locator("#chatbot textarea.edit-textarea")
        edit.fill("Plan a food tour of Porto.")
        edit.press("Enter")
        chat_shows(page, "Plan a food tour of Porto.")
        page.wait_for_function("() => document.querySelector('#conversations')"
                               ".innerText.includes('Porto food tour')", timeout=30_000)
        assert "Lisbon" not in page.inner_text("#conversations")
        page.reload()                                   # stored, not only shown
        page.wait_for_selector("#conversations label", timeout=30_000)
        assert "Porto food tour" in page.inner_text("#conversations")


def test_rename_and_delete_from_the_chat_item(app_url, browser):
    ctx = browser.new_context(viewport={"width": 1440, "height": 900})
    page = open_page(ctx, app_url)
    send_and_wait(page, "Item actions for the capybara")
    send_and_wait(page, "Follow-up")
    page.click("#new-chat")
    send_and_wait(page, "Another chat about otters")
    item = page.locator("#conversations label", has_text="capybara")
    item.hover()
    page.click("#chat-item-actions button[data-act=rename]")
    chat_shows(page, "capybara")                                     # that chat is opened
    box = page.locator("#new-title textarea, #new-title input").first
    page.wait_for_function("() => (document.querySelector('#new-title textarea, #new-title "
                           "input')?.value || '').includes('capybara')", timeout=10_000)
    box.fill("Capybara notes")
    page.click("#rename-conversation")
    page.wait_for_function("() => document.querySelector('#conversations')"
                           ".innerText.includes('Capybara notes')", timeout=10_000)
    # delete asks first, then removes exactly that chat
    page.locator("#conversations label", has_text="Capybara notes").hover()
    page.click("#chat-item-actions button[data-act=delete]")
    page.wait_for_selector("#confirm-delete-button", state="visible", timeout=10_000)
    assert "Capybara notes" in page.inner_text("#conversations")     # nothing deleted yet
    page.click("#confirm-delete-button")
    page.wait_for_function("() => !document.querySelector('#conversations')"
                           ".innerText.includes('Capybara notes')", timeout=10_000)
    assert "otters" in page.inner_text("#conversations")
    wait_url(page, lambda u: "?c=" not in u)
    ctx.close()


XSS = ('Shared answer. <img src="x" onerror="window.__xss = 1"> '
       '<form action="/phish"><input type=password></form> <iframe src="/iframe"></iframe> '
       '<a href="javascript:window.__xss = 2">js link</a> <script>window.__xss = 3</script> '
       'and $e^{i\\pi}+1=0$')


def test_a_shared_page_is_sanitized_like_the_chat(browser, tmp_path):
    from gradio_client import Client

    with WireServer() as wire:
        wire.config.script = [{"content": XSS}]
        proc, url = start_app(tmp_path, CONFIG.format(url=wire.url))
        try:
            client = Client(url, verbose=False)
            owner = "share-xss-" + "x" * 40
            out = client.predict("<b>hi</b> <img src=y onerror='window.__xss=4'>", "", "wire",
                                 "", 0.6, 0.9, 32, False, owner, api_name="/chat")
            sid = client.predict(out[-1]["conversation_id"], owner,
                                 api_name="/share_conversation")
            ctx = browser.new_context()
            page = open_page(ctx, url + "?share=" + sid)
            page.wait_for_selector("#share-view", state="visible", timeout=15_000)
            page.wait_for_function("() => document.querySelector('#chatbot')"
                                   ".innerText.includes('Shared answer.')", timeout=15_000)
            page.wait_for_timeout(500)
            found = page.evaluate("""() => {
                const chat = document.querySelector('#chatbot');
                return {xss: window.__xss === undefined ? null : window.__xss,
                        handlers: [...chat.querySelectorAll('*')].filter(e =>
                            [...e.attributes].some(a => a.name.startsWith('on'))).length,
                        forms: chat.querySelectorAll('form, iframe, script, input[type=password]').length,
                        jsLinks: [...chat.querySelectorAll('a')].filter(a =>
                            (a.getAttribute('href') || '').startsWith('javascript')).length,
                        math: chat.querySelectorAll('.katex').length};
            }""")
            assert found == {"xss": None, "handlers": 0, "forms": 0, "jsLinks": 0,
                             "math": found["math"]}, found
            assert found["math"] >= 1                       # still rendered like the chat
            ctx.close()
        finally:
            stop_process(proc)


def test_settings_stay_reachable_however_long_the_list(browser, tmp_path):
    with WireServer() as wire:
        wire.config.tokens = 2
        proc, url = start_app(tmp_path, CONFIG.format(url=wire.url)
                              + "limits: {messages_per_minute: 100}\n")
        try:
            _long_list(browser, url)
        finally:
            stop_process(proc)


def _long_list(browser, app_url):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800})
    page = open_page(ctx, app_url)
    for i in range(24):
        page.click("#new-chat")
        if i:
            chat_lacks(page, f"Chat number {i - 1}.")
        send_and_wait(page, f"Chat number {i}.")
    page.wait_for_function("() => document.querySelectorAll('#conversations label').length "
                           ">= 24", timeout=20_000)
    sizes = page.evaluate("""() => {
        const w = document.querySelector('#conversations label').parentElement;
        return {scroll: w.scrollHeight, client: w.clientHeight}; }""")
    assert sizes["scroll"] > sizes["client"]              # the list scrolls on its own
    for name in ("Share", "Settings"):
        header = page.locator(".sidebar button", has_text=name).first
        box = header.bounding_box()
        assert box and box["y"] + box["height"] <= 800, (name, box)
    page.click(".sidebar button:has-text('Settings')")
    page.wait_for_selector("#system-prompt", state="visible", timeout=10_000)
    ctx.close()
