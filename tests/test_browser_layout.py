"""Layout as a person sees it (issue 9 items 4, 10, 12, 14, 15): real Chromium at 1440×900 and
390×844 against `python app.py`, measuring bounding boxes rather than reading the DOM only.

One app for the module, with two models: the bundled one (long name and description, as in
a real config, to show squeezing on a phone) and an unreachable one that is only chosen,
never asked, to check that settings follow the model.
"""

from __future__ import annotations

import re

import pytest

from tests.conftest import start_app, stop_process

pytestmark = [pytest.mark.slow, pytest.mark.browser]

DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
MODEL = "SmolLM2-135M-Instruct-bundled"
CONFIG = f"""
models:
  - name: {MODEL}
    type: llamacpp
    model_path: bundled
    context_length: 2048
    parallel: 2
    description: "SmolLM2 135M Instruct, the small model bundled with the app, on the CPU"
    system_prompt: "You are a helpful assistant."
    parameters: {{temperature: 0.6, top_p: 0.9, max_new_tokens: 48, repetition_penalty: 1.2}}
  - name: other
    type: openai
    endpoint_url: http://127.0.0.1:9/v1
    context_length: 1024
    description: "Never asked in these tests"
    system_prompt: "You answer in French."
    parameters: {{temperature: 0.2, top_p: 0.5, max_new_tokens: 128}}
storage:
  db_path: {{db}}
websearch:
  enabled: true
"""
# Pictographs that Debian's Chromium draws as empty boxes (no emoji font installed).
EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F\u25B6\u25C0]")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    proc, url = start_app(tmp_path_factory.mktemp("layout"), config=CONFIG)
    yield url
    stop_process(proc)


def open_page(browser, url, viewport=DESKTOP, **context_args):
    """A new browser context (its own localStorage: its own anonymous user) on the app."""
    context = browser.new_context(viewport=viewport, **context_args)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.wait_for_timeout(800)  # load events: token, conversations, saved settings
    return page


def send(page, text: str) -> None:
    page.fill("#input textarea", text)
    page.keyboard.press("Enter")


def wait_answer_done(page) -> None:
    page.wait_for_selector("#input .stop-button", timeout=60_000)
    page.wait_for_selector("#input .submit-button", timeout=120_000)
    page.wait_for_selector('#chatbot button[aria-label="Like"]', timeout=30_000)


def answered(browser, url, message: str, viewport=DESKTOP, **context_args):
    page = open_page(browser, url, viewport, **context_args)
    send(page, message)
    wait_answer_done(page)
    return page


def box(page, selector: str) -> dict:
    b = page.locator(selector).first.bounding_box()
    assert b is not None, f"{selector} is not rendered"
    return b


def within(b: dict, viewport: dict) -> bool:
    return (b["x"] >= 0 and b["y"] >= 0 and b["x"] + b["width"] <= viewport["width"] + 0.5
            and b["y"] + b["height"] <= viewport["height"] + 0.5)


def intersects(a: dict, b: dict) -> bool:
    return not (a["x"] + a["width"] <= b["x"] or b["x"] + b["width"] <= a["x"]
                or a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"])


def text_box(page, selector: str) -> dict:
    """The box of the text itself (a block element is as wide as its container)."""
    return page.evaluate("""s => {
        const walk = document.createTreeWalker(document.querySelector(s), NodeFilter.SHOW_TEXT);
        const rects = [];
        while (walk.nextNode()) {
            const range = document.createRange();
            range.selectNodeContents(walk.currentNode);
            rects.push(...[...range.getClientRects()].filter(r => r.width > 0));
        }
        const x = Math.min(...rects.map(r => r.left)), y = Math.min(...rects.map(r => r.top));
        return {x, y, width: Math.max(...rects.map(r => r.right)) - x,
                height: Math.max(...rects.map(r => r.bottom)) - y};
    }""", selector)


def lines_of(page, selector: str) -> int:
    """How many lines the text of `selector` wraps to, as laid out."""
    return page.evaluate("""s => {
        const range = document.createRange();
        range.selectNodeContents(document.querySelector(s));
        const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                             .map(r => Math.round(r.top)));
        return tops.size;
    }""", selector)


# -- item 4: phone ----------------------------------------------------------------------

def test_phone_starts_with_the_chat_not_the_sidebar(browser, app):
    page = open_page(browser, app, PHONE)
    page.wait_for_timeout(1000)
    sidebar = box(page, ".sidebar")
    assert sidebar["x"] + sidebar["width"] <= 1, f"the sidebar covers the chat: {sidebar}"
    # The input, and the chat above it, are what the phone shows first.
    assert page.evaluate("() => document.elementFromPoint(195, 400)?.closest('#chatbot') != null")
    # The sidebar is still one tap away, and a desktop starts with it open.
    page.click(".sidebar .toggle-button")
    page.wait_for_function("() => document.querySelector('#new-chat')"
                           ".getBoundingClientRect().left >= 0", timeout=5_000)
    assert within(box(page, "#new-chat"), PHONE)
    page.context.close()
    desktop = open_page(browser, app, DESKTOP)
    assert box(desktop, ".sidebar")["x"] >= 0
    desktop.context.close()


def test_phone_header_and_input_fit_the_screen(browser, app):
    page = open_page(browser, app, PHONE)
    page.wait_for_timeout(1000)
    # The model name is not under the dropdown's arrow.
    text_right = page.evaluate("""() => {
        const input = document.querySelector('#model input');
        const style = getComputedStyle(input);
        const ctx = document.createElement('canvas').getContext('2d');
        ctx.font = style.font;
        return input.getBoundingClientRect().left + parseFloat(style.paddingLeft)
               + ctx.measureText(input.value).width;
    }""")
    arrow = box(page, "#model .icon-wrap")
    assert page.input_value("#model input") == MODEL
    assert text_right <= arrow["x"], (text_right, arrow)
    # The model description reads as a sentence, not one word per line.
    words = len(page.inner_text("#model-info").split())
    assert words > 10 and lines_of(page, "#model-info") <= words // 4
    info = box(page, "#model-info")
    assert within(info, PHONE) and info["width"] >= 0.75 * PHONE["width"], info
    # The whole input box is on screen, and "Search the web" is readable on one line.
    assert within(box(page, "#input"), PHONE), box(page, "#input")
    label = "#web-search label span"
    assert page.inner_text(label) == "Search the web"
    assert within(box(page, label), PHONE) and lines_of(page, label) == 1
    assert page.evaluate("s => { const e = document.querySelector(s);"
                         " return e.scrollWidth <= e.clientWidth + 1; }", "#web-search label")
    page.context.close()


def test_phone_reason_box_opens_on_screen(browser, app):
    page = answered(browser, app, "Name a colour.", PHONE)
    page.click('#chatbot button[aria-label="Dislike"]')
    page.wait_for_selector("#reason-box", state="visible", timeout=10_000)
    page.wait_for_timeout(500)
    reason = box(page, "#reason-box")
    assert within(reason, PHONE), reason
    assert within(box(page, "#reason-box button:has-text('Send feedback')"), PHONE)
    page.context.close()


# -- item 10: settings survive a reload -----------------------------------------------------

def set_number(page, elem_id: str, value) -> None:
    field = page.locator(f"#{elem_id} input[type=number]")
    field.fill(str(value))
    field.press("Enter")


def open_settings(page) -> None:
    page.click(".sidebar button:has-text('Settings')")
    page.wait_for_selector("#temperature input[type=number]", state="visible")


def test_settings_survive_a_reload_and_follow_the_model(browser, app):
    page = open_page(browser, app)
    open_settings(page)
    assert page.input_value("#temperature input[type=number]") == "0.6"
    set_number(page, "temperature", 1.3)
    set_number(page, "max-new-tokens", 96)
    page.fill("#system-prompt textarea", "You are a pirate.")
    page.locator("#system-prompt textarea").blur()
    page.check("#web-search input[type=checkbox]")
    page.wait_for_timeout(1000)

    page.reload()
    page.wait_for_selector("#input textarea", timeout=30_000)
    open_settings(page)
    page.wait_for_function("() => document.querySelector('#temperature input[type=number]')"
                           ".value === '1.3'", timeout=10_000)
    assert page.input_value("#max-new-tokens input[type=number]") == "96"
    assert page.input_value("#system-prompt textarea") == "You are a pirate."
    assert page.is_checked("#web-search input[type=checkbox]")

    # Choosing a model still resets to that model's defaults, and the choice is kept too.
    page.click("#model input")
    page.click("[role=option]:has-text('other')")
    page.wait_for_function("() => document.querySelector('#temperature input[type=number]')"
                           ".value === '0.2'", timeout=10_000)
    assert page.input_value("#system-prompt textarea") == "You answer in French."
    page.wait_for_timeout(1000)
    page.reload()
    page.wait_for_selector("#input textarea", timeout=30_000)
    open_settings(page)
    page.wait_for_function("() => document.querySelector('#model input').value === 'other'",
                           timeout=10_000)
    assert page.input_value("#temperature input[type=number]") == "0.2"
    assert "Never asked" in page.inner_text("#model-info")
    # Another browser has its own settings.
    other = open_page(browser, app)
    open_settings(other)
    assert other.input_value("#temperature input[type=number]") == "0.6"
    assert other.input_value("#model input") == MODEL
    other.context.close()
    page.context.close()


# -- item 12: overlapping and far-apart buttons, delete, footer, undo -----------------------

def test_chat_wide_icons_never_cover_a_messages_buttons(browser, app):
    # A short question, then a long one below it: the chat scrolls far enough for the first
    # question's Copy/Edit buttons to reach the top of the chat.
    page = answered(browser, app, "Hello.")
    send(page, "Summarise these notes:\n" + "\n".join(f"note {i}" for i in range(40)))
    wait_answer_done(page)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"user\"]')"
                           ".length === 2")
    user_edit = '#chatbot .message-buttons-right button[aria-label="Edit"]'
    # Scroll the user message's buttons to the top edge of the chat's scrolling area (again
    # if a late update of the chat autoscrolls it back to the bottom).
    for _ in range(10):
        offset = page.evaluate("""sel => {
            const wrap = document.querySelector('#chatbot .bubble-wrap');
            const edit = document.querySelector(sel);
            const off = edit.getBoundingClientRect().top - wrap.getBoundingClientRect().top;
            wrap.scrollTop += off;
            return off;
        }""", user_edit)
        page.wait_for_timeout(500)
        if abs(offset) < 1:
            break
    else:
        pytest.fail("could not scroll the chat")
    chat_wide = page.locator("#chatbot .top-panel button").all()
    assert len(chat_wide) >= 2  # Clear and Copy all
    user_copy = '#chatbot .message-buttons-right button[aria-label="Copy message"]'
    for selector in (user_edit, user_copy):
        mine = box(page, selector)
        for other in chat_wide:
            assert not intersects(mine, other.bounding_box()), (selector, other.inner_html())
    edit = box(page, user_edit)
    hit = page.evaluate("([x, y]) => document.elementFromPoint(x, y)?.closest('button')"
                        "?.getAttribute('aria-label')",
                        [edit["x"] + edit["width"] / 2, edit["y"] + edit["height"] / 2])
    assert hit == "Edit"
    page.context.close()


def test_answer_switcher_arrows_sit_beside_the_count(browser, app):
    page = answered(browser, app, "Invent a name for a dog.")
    page.click('#chatbot button[aria-label="Retry"]')
    wait_answer_done(page)
    page.wait_for_selector("#answer-position:has-text('2 / 2')", timeout=15_000)
    prev, nxt = box(page, "#prev-answer"), box(page, "#next-answer")
    label = text_box(page, "#answer-position")
    assert "2 / 2" in page.inner_text("#answer-position")
    assert 0 <= label["x"] - (prev["x"] + prev["width"]) <= 40, (prev, label)
    assert 0 <= nxt["x"] - (label["x"] + label["width"]) <= 40, (label, nxt)
    assert abs((prev["y"] + prev["height"] / 2) - (nxt["y"] + nxt["height"] / 2)) < 4
    page.context.close()


def conversation_titles(page) -> list[str]:
    return [e.inner_text() for e in page.query_selector_all("#conversations label")]


def test_delete_asks_for_confirmation(browser, app):
    page = answered(browser, app, "Tell me about rivers.")
    page.wait_for_selector("#conversations label:has-text('Tell me about rivers.')")
    page.click(".sidebar button:has-text('Rename / delete')")
    page.click("#delete-conversation")
    page.wait_for_selector("#confirm-delete-button", state="visible", timeout=10_000)
    page.wait_for_timeout(500)
    assert "Tell me about rivers." in conversation_titles(page)  # nothing deleted yet
    page.click("#cancel-delete-button")
    page.wait_for_selector("#confirm-delete-button", state="hidden", timeout=10_000)
    page.wait_for_timeout(500)
    assert "Tell me about rivers." in conversation_titles(page)
    page.click("#delete-conversation")
    page.click("#confirm-delete-button")
    page.wait_for_function("() => !document.querySelector('#conversations')"
                           ".innerText.includes('Tell me about rivers.')", timeout=10_000)
    assert page.locator('[data-testid="user"]').count() == 0
    page.context.close()


def test_no_gradio_footer(browser, app):
    page = open_page(browser, app)
    assert page.locator("footer").count() == 0 or not page.is_visible("footer")
    assert page.get_by_text("Use via API").count() == 0
    assert page.get_by_text("Built with Gradio").count() == 0
    page.context.close()


def test_undo_of_the_first_message_leaves_no_conversation(browser, app):
    page = answered(browser, app, "A question to take back.")
    page.wait_for_selector("#conversations label:has-text('A question to take back.')")
    page.click('#chatbot button[aria-label="Undo"]')
    page.wait_for_function("() => !document.querySelector('[data-testid=\"user\"]')",
                           timeout=10_000)
    assert page.input_value("#input textarea") == "A question to take back."
    page.wait_for_function("() => !document.querySelector('#conversations')"
                           ".innerText.includes('A question to take back.')", timeout=10_000)
    assert page.locator("#conversations input:checked").count() == 0
    page.reload()
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.wait_for_timeout(1500)
    assert "A question to take back." not in conversation_titles(page)
    page.context.close()


# -- item 14: every control has a word or a label --------------------------------------------

def test_every_button_and_tab_has_a_word_or_a_label(browser, app):
    page = answered(browser, app, "Say something short.")
    page.click(".sidebar button:has-text('Rename / delete')")
    page.click(".sidebar button:has-text('Settings')")
    page.wait_for_timeout(500)
    controls = page.evaluate("""() => [...document.querySelectorAll(
            'button, [role=tab], [role=button]')]
        .filter(e => e.getClientRects().length > 0 && getComputedStyle(e).visibility !== 'hidden')
        .map(e => ({text: e.innerText.trim(), label: e.getAttribute('aria-label') || '',
                    html: e.outerHTML.slice(0, 120)}))""")
    assert len(controls) > 10
    bad = []
    for c in controls:
        named = re.search(r"[A-Za-z]{2,}", c["text"]) or re.search(r"[A-Za-z]{2,}", c["label"])
        if not named or EMOJI.search(c["text"]):
            bad.append(c)
    assert not bad, bad
    # The tabs read as words too.
    tabs = [t.strip() for t in page.locator("[role=tab]").all_inner_texts()]
    assert "Chat" in tabs and "Feedback" in tabs
    page.context.close()


# -- item 15: edit with Enter, which model answered, thumbs order ------------------------------

def test_enter_in_the_edit_box_saves_and_resends(browser, app):
    page = answered(browser, app, "Name a fruit.")
    page.click('#chatbot button[aria-label="Edit"]')
    edit = page.locator("#chatbot textarea.edit-textarea")
    edit.fill("Name a vegetable.")
    edit.press("Shift+Enter")  # a new line, not a send
    assert page.locator("#chatbot textarea.edit-textarea").count() == 1
    assert edit.input_value() == "Name a vegetable.\n"
    edit.press("Backspace")
    edit.press("Enter")
    page.wait_for_function("() => document.querySelector('[data-testid=\"user\"]')?.innerText"
                           ".includes('Name a vegetable.')", timeout=15_000)
    assert page.locator("#chatbot textarea.edit-textarea").count() == 0
    wait_answer_done(page)
    assert page.locator('[data-testid="user"]').count() == 1
    page.context.close()


MODEL_TAG = '#chatbot .bot-row .message:first-child > [data-testid="bot"] small'


def test_each_answer_names_its_model_and_copy_leaves_it_out(browser, app):
    page = answered(browser, app, "Say hi.", permissions=["clipboard-read",
                                                          "clipboard-write"])
    tag = page.locator(MODEL_TAG)
    assert tag.count() == 1 and tag.inner_text() == MODEL
    assert tag.is_visible()
    # Muted, and above the answer's text in the same bubble.
    assert float(tag.evaluate("e => getComputedStyle(e).opacity")) < 1
    text = box(page, '#chatbot .bot-row .message:last-child > [data-testid="bot"]')
    assert box(page, MODEL_TAG)["y"] < text["y"]
    # Kept after a reload.
    page.reload()
    page.wait_for_selector("#conversations label:has-text('Say hi.')", timeout=30_000)
    page.click("#conversations label:has-text('Say hi.')")
    page.wait_for_selector(MODEL_TAG, timeout=15_000)
    assert page.inner_text(MODEL_TAG) == MODEL
    # Copying the answer copies the answer, not the model tag.
    page.click('#chatbot .message-buttons-left button[aria-label="Copy message"]')
    page.wait_for_timeout(300)
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.strip() and "<small>" not in copied and MODEL not in copied
    page.context.close()


def test_thumbs_up_comes_before_thumbs_down(browser, app):
    page = answered(browser, app, "Count to three.")
    like = box(page, '#chatbot .message-buttons-left button[aria-label="Like"]')
    dislike = box(page, '#chatbot .message-buttons-left button[aria-label="Dislike"]')
    assert like["x"] + like["width"] <= dislike["x"], (like, dislike)
    assert abs(like["y"] - dislike["y"]) < 2
    page.context.close()
