"""Real headless Chromium (Debian's `chromium`, driven by Playwright) against `python app.py`."""

import time

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.browser]



@pytest.fixture
def page(browser, app_url):
    page = browser.new_page()
    page.goto(app_url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    yield page
    page.close()


def bot_text(page) -> str:
    bots = page.query_selector_all('[data-testid="bot"]')
    return bots[-1].inner_text() if bots else ""


def send(page, text: str) -> None:
    page.fill("#input textarea", text)
    page.keyboard.press("Enter")


def test_tokens_stream_in_and_stop_halts_generation(page):
    send(page, "Write a very long story about a dragon and a knight.")
    lengths = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(set(lengths)) < 4:
        lengths.append(len(bot_text(page)))
        time.sleep(0.05)
    distinct = sorted(set(lengths) - {0})
    assert len(distinct) >= 3, f"no visible streaming: {lengths[-20:]}"
    assert page.input_value("#input textarea") == ""  # input moved into the chat

    page.click("#input .stop-button")
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"bot\"]')].pop()"
        "?.innerText.includes('Stopped')", timeout=10_000)
    stopped_at = bot_text(page)
    time.sleep(1.5)
    assert bot_text(page) == stopped_at, "tokens kept arriving after stop"
    # The partial answer is kept, not replaced.
    assert len(stopped_at.replace("Stopped.", "").strip()) > 0
    # The input is usable again.
    page.wait_for_selector("#input .submit-button", timeout=5_000)


def test_html_in_messages_is_sanitized(page):
    payload = '<img src="x" onerror="window.__xss = 1"><script>window.__xss = 2</script>Hello'
    send(page, payload)
    page.wait_for_selector('[data-testid="user"]', timeout=15_000)
    page.wait_for_selector('[data-testid="bot"]', timeout=60_000)
    time.sleep(0.5)
    assert page.evaluate("window.__xss") is None
    # No element carries the handler or is a script: the markup shows as text (sanitize.py).
    assert page.query_selector_all('[data-testid="user"] [onerror], [data-testid="user"] script,'
                                   ' [data-testid="user"] img') == []
    assert '<img src="x" onerror=' in page.inner_text('[data-testid="user"]')
    assert "Hello" in page.inner_text('[data-testid="user"]')
    page.click("#input .stop-button") if page.query_selector("#input .stop-button") else None


def test_latex_and_code_render(page):
    # The user bubble goes through the same markdown/KaTeX pipeline as answers.
    send(page, "Euler: $e^{i\\pi}+1=0$ and `code`")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"user\"] .katex').length > 0",
        timeout=30_000)
    assert page.query_selector('[data-testid="user"] code') is not None


LAST_BOT_TEXT = """() => { const b = [...document.querySelectorAll('[data-testid="bot"]')].pop();
                          return b ? b.innerText : ""; }"""


def wait_answer_done(page) -> None:
    """Send is back, the answer has its thumbs and its text is on screen. Gradio renders a
    bubble's markdown asynchronously, so the text can land a moment after the buttons."""
    page.wait_for_selector("#input .stop-button", timeout=60_000)
    page.wait_for_selector("#input .submit-button", timeout=120_000)
    page.wait_for_selector('#chatbot button[aria-label="Like"]', timeout=30_000)
    page.wait_for_function(f"() => ({LAST_BOT_TEXT})().trim().length > 0", timeout=15_000)


def wait_bot_text(page, expected: str) -> None:
    """The last bubble shows `expected`; on timeout, fail with what it shows instead."""
    try:
        page.wait_for_function(f"e => ({LAST_BOT_TEXT})() === e", arg=expected, timeout=15_000)
    except Exception:
        assert bot_text(page) == expected


def labels(page) -> list[str]:
    return [e.get_attribute("aria-label") for e in page.query_selector_all("#chatbot button")]


def answered_page(browser, app_url, message: str):
    """A new browser context (its own localStorage: its own anonymous user) that asked
    `message` and got a complete answer. Returns (context, page)."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(app_url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    send(page, message)
    wait_answer_done(page)
    return context, page


def test_thumbs_up_persists_after_reload(browser, app_url):
    context, page = answered_page(browser, app_url, "Say hello to the reviewer.")
    page.click('#chatbot button[aria-label="Like"]')
    page.wait_for_selector('#chatbot button[aria-label="Liked"]', timeout=10_000)

    page.reload()
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.wait_for_selector("#conversations label", timeout=15_000)
    titles = [e.inner_text() for e in page.query_selector_all("#conversations label")]
    assert "Say hello to the reviewer." in titles
    page.click("#conversations label:has-text('Say hello to the reviewer.')")
    page.wait_for_selector('#chatbot button[aria-label="Liked"]', timeout=15_000)
    assert "Say hello to the reviewer." in page.inner_text('[data-testid="user"]')

    # Another browser (another anonymous user) does not see it.
    other = browser.new_context().new_page()
    other.goto(app_url)
    other.wait_for_selector("#input textarea", timeout=30_000)
    other.wait_for_timeout(1500)
    assert "Say hello to the reviewer." not in other.inner_text("#conversations")
    other.context.close()
    context.close()


def test_change_vote_dislike_with_reason_stays_private(browser, app_url):
    context, page = answered_page(browser, app_url, "Tell me a fact about owls.")
    page.click('#chatbot button[aria-label="Like"]')
    page.wait_for_selector('#chatbot button[aria-label="Liked"]', timeout=10_000)
    page.click('#chatbot button[aria-label="Liked"]')  # remove the vote
    page.wait_for_selector('#chatbot button[aria-label="Like"]', timeout=10_000)
    page.click('#chatbot button[aria-label="Dislike"]')
    page.wait_for_selector("text=What was wrong with this answer?", timeout=10_000)
    page.get_by_label("incorrect").check()
    comment = "Wrong owl fact"
    page.fill("textarea[placeholder='Tell us more…']", comment)
    page.click("button:has-text('Send feedback')")
    page.wait_for_selector("text=What was wrong with this answer?", state="hidden",
                           timeout=10_000)

    # No login and no CHATUI_ADMIN_TOKEN: the Feedback tab says how to turn it on and shows
    # nobody the comments, even after Refresh (the operator's view: test_browser_feedback.py).
    page.click("button[role='tab']:has-text('Feedback')")
    page.wait_for_selector("#feedback-status:has-text('CHATUI_ADMIN_TOKEN')", timeout=15_000)
    assert not page.is_visible("#admin-token")
    page.click("#feedback-refresh")
    page.wait_for_timeout(1000)
    assert comment not in page.content() and not page.is_visible("#latest-comments")

    # After a reload the answer still shows the changed vote.
    page.reload()
    page.wait_for_selector("#conversations label", timeout=30_000)
    page.click("#conversations label:has-text('Tell me a fact about owls.')")
    page.wait_for_selector('#chatbot button[aria-label="Disliked"]', timeout=15_000)
    assert "Liked" not in labels(page)
    context.close()


def test_retry_then_switch_between_sibling_answers(browser, app_url):
    context, page = answered_page(browser, app_url, "Invent a name for a cat.")
    first = bot_text(page)
    assert not page.is_visible("#answer-nav")  # one answer: nothing to switch
    page.click('#chatbot button[aria-label="Retry"]')
    wait_answer_done(page)
    page.wait_for_selector("#answer-position:has-text('2 / 2')", timeout=15_000)
    second = bot_text(page)
    page.click("#prev-answer")
    page.wait_for_selector("#answer-position:has-text('1 / 2')", timeout=15_000)
    wait_bot_text(page, first)
    page.click("#next-answer")
    page.wait_for_selector("#answer-position:has-text('2 / 2')", timeout=15_000)
    wait_bot_text(page, second)
    context.close()


def test_edit_a_question_branches_and_answers_again(browser, app_url):
    context, page = answered_page(browser, app_url, "Name a fruit.")
    page.click('#chatbot button[aria-label="Edit"]')
    page.fill("#chatbot textarea.edit-textarea", "Name a vegetable.")
    page.click('#chatbot button[aria-label="Submit"]')
    wait_answer_done(page)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"user\"]')?.innerText"
        ".includes('Name a vegetable.')", timeout=15_000)
    assert len(page.query_selector_all('[data-testid="user"]')) == 1
    assert bot_text(page).strip()
    # The edited question is a new branch of the same conversation (one sidebar entry),
    # titled after the version of the first question on screen.
    page.reload()
    page.wait_for_selector("#conversations label", timeout=30_000)
    titles = [e.inner_text() for e in page.query_selector_all("#conversations label")]
    assert titles.count("Name a vegetable.") == 1 and "Name a fruit." not in titles
    page.click("#conversations label:has-text('Name a vegetable.')")
    page.wait_for_function(
        "() => document.querySelector('[data-testid=\"user\"]')?.innerText"
        ".includes('Name a vegetable.')", timeout=15_000)
    context.close()
