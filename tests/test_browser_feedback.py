"""The Feedback dashboard is the operator's: a real `python app.py` with CHATUI_ADMIN_TOKEN set,
a comment written by one Chromium browser, then what other browsers and raw API callers get.

All callers here come from 127.0.0.1, so these tests also prove loopback earns no trust."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest

from tests.conftest import start_app, stop_process

pytestmark = pytest.mark.slow

TOKEN = "operator-" + uuid.uuid4().hex  # what the operator put in the environment
COMMENT = "Owls do not hibernate, " + uuid.uuid4().hex[:8]
HEADERS = ["time (UTC)", "model", "vote", "reason", "comment"]
GUESSES = [None, "", "admin", "password", "op", TOKEN[:-1], TOKEN + "x", TOKEN.upper()]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback-dashboard")
    proc, url = start_app(tmp, extra_env={"CHATUI_ADMIN_TOKEN": TOKEN})
    yield url.rstrip("/")
    stop_process(proc)


@pytest.fixture(scope="module")
def commented(browser, app):
    """A visitor's browser asked, disliked the answer and left COMMENT with a reason."""
    context = browser.new_context()
    page = context.new_page()
    page.goto(app + "/")
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.fill("#input textarea", "Do owls hibernate?")
    page.keyboard.press("Enter")
    page.wait_for_selector('#chatbot button[aria-label="Dislike"]', timeout=120_000)
    page.wait_for_selector("#input .submit-button", timeout=120_000)
    page.click('#chatbot button[aria-label="Dislike"]')
    page.wait_for_selector("text=What was wrong with this answer?", timeout=10_000)
    page.get_by_label("incorrect").check()
    page.fill("textarea[placeholder='Tell us more…']", COMMENT)
    page.click("button:has-text('Send feedback')")
    page.wait_for_selector("text=What was wrong with this answer?", state="hidden",
                           timeout=10_000)
    # The visitor's own Feedback tab shows nothing either.
    page.click("button[role='tab']:has-text('Feedback')")
    page.wait_for_selector("#feedback-status:has-text('Enter the admin token')",
                           timeout=15_000)
    assert COMMENT not in page.content()
    context.close()
    return COMMENT


# -- the API: raw HTTP, as an attacker would call it ------------------------------------------

def dashboard_fns(url: str) -> list[int]:
    """fn ids of every event that writes the comment table (found in the public /config,
    exactly as an attacker would)."""
    config = httpx.get(url + "/config", timeout=10).json()
    table = next(c["id"] for c in config["components"]
                 if c.get("props", {}).get("elem_id") == "latest-comments")
    return [d["id"] for d in config["dependencies"] if table in d["outputs"]]


def run_predict(url: str, fn: int, data: list) -> str:
    r = httpx.post(url + "/gradio_api/run/predict", timeout=30,
                   json={"fn_index": fn, "data": data, "session_hash": uuid.uuid4().hex[:10],
                         "event_data": None, "trigger_id": None})
    return f"{r.status_code} {r.text}"


def queue_join(url: str, fn: int, data: list) -> str:
    """/queue/join then the SSE stream of /queue/data until the job ends; all text seen."""
    session = uuid.uuid4().hex[:10]
    r = httpx.post(url + "/gradio_api/queue/join", timeout=30,
                   json={"fn_index": fn, "data": data, "session_hash": session,
                         "event_data": None, "trigger_id": None})
    seen = [f"{r.status_code} {r.text}"]
    if r.status_code != 200:
        return "\n".join(seen)
    with httpx.stream("GET", url + "/gradio_api/queue/data", timeout=30,
                      params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            seen.append(line)
            if "process_completed" in line or "close_stream" in line:
                break
    return "\n".join(seen)


def test_no_guessed_token_gets_the_dashboard_through_raw_http(app, commented):
    fns = dashboard_fns(app)
    assert len(fns) == 4  # tab select, Unlock, Enter in the token box, Refresh
    for fn in fns:
        for guess in GUESSES:
            for call in (run_predict, queue_join):
                body = call(app, fn, [guess])
                assert commented not in body, (fn, guess, call.__name__)
                assert "incorrect" not in body
        # Wrong arity / types are refused without data too.
        for data in ([], [TOKEN[:8], "x"], [{"x": 1}]):
            assert commented not in run_predict(app, fn, data)
    # Positive control: the very same request with the operator's token does reach the
    # handler and returns the comment, so the refusals above are the check at work.
    body = run_predict(app, fns[-1], [TOKEN])
    assert commented in body
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d\"", body), body[:500]


def test_gradio_client_lists_and_reaches_no_dashboard_endpoint(app, commented):
    from gradio_client import Client

    client = Client(app + "/", verbose=False)
    api = json.dumps(client.view_api(print_info=False, return_format="dict"))
    assert "latest" not in api.lower() and "dashboard" not in api.lower()
    for fn in dashboard_fns(app):
        for guess in ("", "admin"):
            try:
                result = client.predict(guess, fn_index=fn)
            except Exception as e:  # refused by the client: fine, as long as nothing leaks
                result = str(e)
            assert commented not in json.dumps(result, default=str)


# -- the browser ----------------------------------------------------------------------------

def open_feedback(browser, url, viewport=(1440, 900)):
    context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    page = context.new_page()
    page.goto(url + "/")
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.click("button[role='tab']:has-text('Feedback')")
    return context, page


@pytest.mark.browser
def test_fresh_anonymous_browser_sees_nothing_even_after_refresh(browser, app, commented):
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    # Not in the page and not on the wire either (a hidden component would not show it).
    answers = []
    page.on("response", lambda r: answers.append(r) if "/run/predict" in r.url else None)
    page.goto(app + "/")
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.click("button[role='tab']:has-text('Feedback')")
    page.wait_for_selector("#feedback-status:has-text('Enter the admin token')",
                           timeout=15_000)
    page.click("#feedback-refresh")
    page.fill("#admin-token input", "admin")
    page.click("#feedback-unlock-button")
    page.wait_for_selector("#feedback-status:has-text('not the admin token')", timeout=15_000)
    page.click("#feedback-refresh")
    page.wait_for_timeout(1500)
    assert commented not in page.content()  # not shown, not hidden in the DOM either
    assert not page.is_visible("#latest-comments")
    assert not page.is_visible("#feedback-rate")
    assert len(answers) >= 4  # tab select, Refresh, Unlock, Refresh
    assert all(commented not in r.text() and "incorrect" not in r.text() for r in answers)
    context.close()


def cell_lines(page, selector: str) -> list[tuple[str, int]]:
    """(text, number of rendered lines) of each element: a wrapped text has >1 line box."""
    return page.evaluate("""sel => [...document.querySelectorAll(sel)].map(el => {
        const r = document.createRange(); r.selectNodeContents(el);
        const tops = new Set([...r.getClientRects()].filter(x => x.width > 0)
                             .map(x => Math.round(x.top)));
        return [el.innerText.trim(), tops.size];
    })""", selector)


@pytest.mark.browser
@pytest.mark.parametrize("viewport", [(1440, 900), (390, 844)], ids=["desktop", "phone"])
def test_operator_unlocks_and_sees_the_comment_at_once(browser, app, commented, viewport):
    context, page = open_feedback(browser, app, viewport)
    page.fill("#admin-token input", TOKEN)
    page.keyboard.press("Enter")  # no Refresh: unlocking loads the data
    page.wait_for_function(
        "c => document.querySelector('#latest-comments')?.innerText.includes(c)",
        arg=commented, timeout=15_000)
    headers = cell_lines(page, "#latest-comments thead th span.header")
    assert [h for h, _ in headers] == HEADERS
    assert all(lines == 1 for _, lines in headers), headers  # "vote" not "vo/te"
    # Gradio draws the rows as a virtual list of divs (the <tbody> only sizes the columns).
    row = next(r for r in page.query_selector_all("#latest-comments .virtual-row")
               if commented in r.inner_text())
    cells = [c.inner_text().strip() for c in row.query_selector_all(".body-cell")]
    when, model, vote, reason, comment = cells[-5:]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", when), when  # no nanoseconds
    assert (model, vote, reason, comment) == ("smol", "👎 down", "incorrect", commented)
    wrapped = {t: n for t, n in cell_lines(page, "#latest-comments .body-cell span.text") if n > 1}
    assert when not in wrapped and vote not in wrapped, wrapped
    # One day of data still draws: a point on the rate chart, a bar on the votes chart.
    page.wait_for_selector("#feedback-rate svg g.mark-symbol.role-mark path", timeout=10_000)
    assert page.query_selector_all("#feedback-votes svg g.mark-rect.role-mark path")
    context.close()


@pytest.mark.browser
def test_reopening_the_tab_loads_new_comments_without_refresh(browser, app, commented):
    from gradio_client import Client

    context, page = open_feedback(browser, app)
    page.fill("#admin-token input", TOKEN)
    page.click("#feedback-unlock-button")
    page.wait_for_selector("#latest-comments", timeout=15_000)
    page.click("button[role='tab']:has-text('Chat')")
    # Meanwhile another visitor comments.
    later = "Second opinion " + uuid.uuid4().hex[:8]
    client, other = Client(app + "/", verbose=False), "other-" + uuid.uuid4().hex * 2
    _, info = client.predict("Name a bird.", "", "smol", "", 0.7, 0.9, 16, False, other,
                             api_name="/chat")
    client.predict(info["assistant_message_id"], "down", "unhelpful", later, other,
                   api_name="/rate")
    page.click("button[role='tab']:has-text('Feedback')")
    page.wait_for_function(
        "c => document.querySelector('#latest-comments')?.innerText.includes(c)",
        arg=later, timeout=15_000)
    context.close()
