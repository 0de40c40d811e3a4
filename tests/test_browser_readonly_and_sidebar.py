"""What a new user tripped over in a QA pass, in real Chromium against `python app.py` (model:
the OpenAI-wire fake, tests/wire.py, so answers are quick and known):

- a shared snapshot (/?share=) offered Clear, Edit, Retry, Undo and the thumbs, which acted on
  nothing (Retry emptied the page under an error badge);
- Enter in the "New title" box did nothing, and a typed title stayed there for the next chat;
- Delete asked "Delete this conversation for good?" with no conversation open;
- "Copy conversation" copied each answer's model line as a turn of its own;
- "‹ Previous" at the first version and "Next ›" at the last looked clickable and did nothing.
"""

from __future__ import annotations

import pytest

from tests.conftest import start_app, stop_process
from tests.wire import APP_CONFIG, WireServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DESKTOP = {"width": 1440, "height": 900}
EDITING = ("Clear", "Edit", "Retry", "Undo", "Like", "Dislike")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with WireServer() as wire:
        wire.config.tokens, wire.config.token_text = 6, "answer "
        proc, url = start_app(tmp_path_factory.mktemp("qa-app"), APP_CONFIG.format(url=wire.url))
        try:
            yield url
        finally:
            stop_process(proc)


def open_page(browser, url, **context_args):
    page = browser.new_context(viewport=DESKTOP, **context_args).new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.wait_for_timeout(500)
    return page


def ask(page, text):
    """Send `text` and wait for its answer to end. The question's own bubble comes first
    (the chat on screen may still be the one a click is leaving); Send is back only once
    the answer is done."""
    page.fill("#input textarea", text)
    page.keyboard.press("Enter")
    page.wait_for_function(
        "t => { const u = [...document.querySelectorAll('[data-testid=\"user\"]')].pop();"
        " return u && u.innerText.includes(t)"
        " && document.querySelector('#input .submit-button')"
        " && document.querySelector('#chatbot button[aria-label=\"Like\"]'); }",
        arg=text, timeout=60_000)


def visible_buttons(page) -> set[str]:
    return set(page.evaluate("""() => [...document.querySelectorAll('#chatbot button')]
        .filter(b => b.getClientRects().length > 0).map(b => b.getAttribute('aria-label'))"""))


def titles(page) -> list[str]:
    return [t.strip() for t in page.locator("#conversations label").all_inner_texts()]


def test_a_shared_snapshot_offers_copy_but_nothing_that_edits_or_rates(app, browser):
    owner = open_page(browser, app)
    ask(owner, "Share this one")
    assert set(EDITING) <= visible_buttons(owner)       # the owner's own chat has them all
    owner.click("#share-accordion .label-wrap")
    owner.click("#share-conversation")
    owner.wait_for_function("() => document.querySelector('#share-link textarea, #share-link"
                            " input')?.value.includes('share=')", timeout=15_000)
    link = owner.evaluate("() => document.querySelector('#share-link textarea, "
                          "#share-link input').value")
    viewer = open_page(browser, link)
    viewer.wait_for_selector("#share-view", timeout=15_000)
    viewer.wait_for_selector('#chatbot [data-testid="bot"]', timeout=15_000)
    shown = visible_buttons(viewer)
    assert "Copy message" in shown and not shown & set(EDITING), shown
    # Continuing makes it the viewer's own chat: the controls come back.
    viewer.click("#continue-share")
    viewer.wait_for_selector("#share-view", state="detached", timeout=15_000)
    viewer.wait_for_function("() => document.querySelector('#chatbot button[aria-label=\"Retry\"]')"
                             "?.getClientRects().length > 0", timeout=15_000)
    assert set(EDITING) <= visible_buttons(viewer)
    owner.context.close()
    viewer.context.close()


def test_enter_renames_and_the_title_box_empties_for_the_next_chat(app, browser):
    page = open_page(browser, app)
    ask(page, "First chat to rename")
    ask_new = page.locator("#new-chat")
    page.click(".sidebar button:has-text('Rename / delete')")
    page.fill("#new-title textarea, #new-title input", "Renamed by Enter")
    page.press("#new-title textarea, #new-title input", "Enter")
    page.wait_for_function("() => document.querySelector('#conversations').innerText"
                           ".includes('Renamed by Enter')", timeout=15_000)
    assert page.input_value("#new-title textarea, #new-title input") == ""
    ask_new.click()
    ask(page, "Second chat")
    page.wait_for_function("() => document.querySelector('#conversations').innerText"
                           ".includes('Second chat')", timeout=15_000)
    page.fill("#new-title textarea, #new-title input", "Left over")
    page.click("#conversations label:has-text('Renamed by Enter')")   # another chat opens
    page.wait_for_function("() => !document.querySelector('#new-title textarea, #new-title"
                           " input').value", timeout=10_000)
    page.click("#rename-conversation")                 # nothing typed: nothing renamed
    page.wait_for_timeout(800)
    assert "Left over" not in " ".join(titles(page))
    assert any("Renamed by Enter" in t for t in titles(page))
    page.context.close()


def test_delete_with_no_chat_open_asks_nothing(app, browser):
    page = open_page(browser, app)
    page.click(".sidebar button:has-text('Rename / delete')")
    page.click("#delete-conversation")
    page.wait_for_function("() => document.body.innerText"
                           ".includes('Open a conversation to delete it.')", timeout=10_000)
    assert not page.is_visible("#confirm-delete-button")
    page.context.close()


def test_copy_conversation_leaves_out_the_model_lines(app, browser):
    page = open_page(browser, app, permissions=["clipboard-read", "clipboard-write"])
    ask(page, "Copy me whole")
    page.wait_for_selector('#chatbot [data-testid="bot"] small', timeout=10_000)
    page.click('#chatbot button[aria-label="Copy conversation"]')
    page.wait_for_timeout(400)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert "Copy me whole" in copied and "answer" in copied
    assert "<small>" not in copied and "wire" not in copied, copied
    assert copied.count("assistant:") == 1, copied
    page.context.close()


def test_version_arrows_are_disabled_at_the_ends(app, browser):
    page = open_page(browser, app)
    ask(page, "Answer me twice")
    page.click('#chatbot button[aria-label="Retry"]')
    page.wait_for_selector("#answer-position:has-text('2 / 2')", timeout=60_000)
    page.wait_for_selector("#input .submit-button", timeout=60_000)
    page.wait_for_function("() => document.querySelector('#next-answer').disabled", timeout=5_000)
    assert not page.evaluate("() => document.querySelector('#prev-answer').disabled")
    page.click("#prev-answer")
    page.wait_for_selector("#answer-position:has-text('1 / 2')", timeout=15_000)
    page.wait_for_function("() => document.querySelector('#prev-answer').disabled", timeout=5_000)
    assert not page.evaluate("() => document.querySelector('#next-answer').disabled")
    page.click("#next-answer")
    page.wait_for_selector("#answer-position:has-text('2 / 2')", timeout=15_000)
    page.context.close()


def test_the_browser_tab_names_the_open_chat(app, browser):
    page = open_page(browser, app)
    app_title = page.title()
    assert app_title and "Name the tab" not in app_title
    ask(page, "Name the tab")
    page.wait_for_function("() => document.title.startsWith('Name the tab - ')", timeout=15_000)
    assert page.title() == f"Name the tab - {app_title}"
    page.click("#new-chat")
    page.wait_for_function("t => document.title === t", arg=app_title, timeout=10_000)
    page.context.close()


def test_a_thumbs_down_reason_is_thanked(app, browser):
    page = open_page(browser, app)
    ask(page, "Rate me down")
    page.click('#chatbot button[aria-label="Dislike"]')
    page.wait_for_selector("#reason-box", state="visible", timeout=10_000)
    page.click("#reason-box label:has-text('unhelpful')")
    page.click("#reason-box button:has-text('Send')")
    page.wait_for_function("() => document.body.innerText.includes('your feedback was saved')",
                           timeout=10_000)
    page.context.close()


def test_the_pages_own_script_runs_without_errors(app, browser):
    """ui.js runs as one function: one error in it silently turns off everything it does."""
    page = browser.new_context(viewport=DESKTOP).new_page()
    errors = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(app)
    page.wait_for_selector("#input textarea", timeout=30_000)
    ask(page, "Any errors?")
    assert not [e for e in errors if "custom JS" in e or "SyntaxError" in e], errors
    page.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, {"width": 390, "height": 844}])
def test_the_version_switcher_keeps_the_input_on_screen(app, browser, viewport):
    page = browser.new_context(viewport=viewport).new_page()
    page.goto(app)
    page.wait_for_selector("#input textarea", timeout=30_000)
    ask(page, "Switch versions")
    page.click('#chatbot button[aria-label="Retry"]')
    page.wait_for_selector("#answer-position:has-text('2 / 2')", timeout=60_000)
    page.wait_for_selector("#input .submit-button", timeout=60_000)
    page.wait_for_timeout(500)
    for sel in ("#input", "#answer-nav", "#web-search"):
        b = page.locator(sel).first.bounding_box()
        assert b and b["y"] >= 0 and b["y"] + b["height"] <= viewport["height"] + 0.5, (sel, b)
    page.context.close()


def test_enter_on_a_focused_chat_opens_it(app, browser):
    page = open_page(browser, app)
    ask(page, "Open me by keyboard")
    page.click("#new-chat")
    page.wait_for_function("() => !document.querySelector('[data-testid=\"user\"]')",
                           timeout=10_000)
    page.focus("#search textarea, #search input")
    page.keyboard.press("Tab")                           # the search box, then the list
    assert page.evaluate("() => document.activeElement.closest('#conversations label')"
                         "?.innerText") == "Open me by keyboard"
    outline = page.locator("#conversations label:has-text('Open me by keyboard')").evaluate(
        "l => getComputedStyle(l).outlineStyle")
    assert outline == "solid"                            # the focus shows
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.querySelector('[data-testid=\"user\"]')?.innerText"
                           ".includes('Open me by keyboard')", timeout=15_000)
    page.context.close()


def test_new_chat_keeps_what_is_being_typed(app, browser):
    """New chat used to empty the input when its update arrived, so whatever the user had
    started typing (or typed right after the click) was lost, and a fast Enter sent nothing."""
    page = open_page(browser, app)
    ask(page, "A chat to leave")
    page.fill("#input textarea", "A draft of my next question")
    page.click("#new-chat")
    page.wait_for_function(
        "() => !document.querySelector('#chatbot [data-testid=\"bot\"]')", timeout=15_000)
    page.wait_for_timeout(1_000)
    assert page.input_value("#input textarea") == "A draft of my next question"
    page.press("#input textarea", "Enter")  # and it is sent as it is
    page.wait_for_function(
        "() => document.querySelector('#chatbot [data-testid=\"user\"]')?.innerText"
        ".includes('A draft of my next question')", timeout=30_000)
    page.context.close()
