"""Hostile answers in real Chromium: nothing remote loads, no form, no overlay, CSP present.

The model is the wire-format fake (tests/wire.py) answering with a list of payloads that
each made the browser fetch a URL, draw a form or cover the chat before the fix; web search
is on, with result titles that carry the same payloads (a local SearXNG-API fake and local
pages). Every payload points at a loopback "tracker" server: any request it receives is a
leak. The page is watched while the answer streams, and again after the conversation is
reloaded from the database. One app process serves the whole module.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlencode

import pytest

from tests.conftest import start_app, stop_process
from tests.pages import PageServer
from tests.wire import WireServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001"
                    "000002024401003b")

# {T} becomes the tracker's URL. Each line once leaked a request, a form or an overlay.
PAYLOAD = """Security check answer.
<img src="{T}/raw-img" onerror="window.__xss = 1">
<IMG SRC={T}/upper-img>
<img srcset="{T}/srcset 2x">
![]({T}/md-img)
![a cat]({T}/md-img-title "A cat")
![ref image][r]

[r]: {T}/ref-img

<video src="{T}/video" autoplay muted></video><audio src="{T}/audio" autoplay></audio>
<video poster="{T}/poster"><source src="{T}/source"></video>
<picture><source srcset="{T}/picture"><img src="{T}/picture-img"></picture>
<div style="background-image:url({T}/css-url)">styled</div>
<div style="position:fixed;top:0;left:0;width:100vw;height:100vh;background:red;z-index:9999">COVER</div>
<form action="{T}/phish"><input type=password name=pw><button>Log in</button></form>
<iframe src="{T}/iframe"></iframe><object data="{T}/object"></object><embed src="{T}/embed">
<link rel="stylesheet" href="{T}/link.css"><svg><image href="{T}/svg-image"/></svg>
<table background="{T}/table-bg"><tr><td>cell</td></tr></table>
<a href="javascript:window.__xss = 2">js link</a> and [md js](javascript:window.__xss=3)

Math still renders: $e^{{i\\pi}}+1=0$, and a citation [1](https://example.org/source).

```html
<form action="/login"><input type="password"></form>
<img src="{T}/in-code">
```

````markdown
```html
<video src="{T}/nested-fence"></video>
```
````
"""
QUESTION = "Security check: show ![q]({T}/user-img) and <img src={T}/user-raw> please"


class Tracker(PageServer):
    """Loopback server that logs every request: the test's leak detector."""

    def __init__(self):
        self.hits: list[str] = []
        super().__init__(self.route)

    def route(self, path: str, query: dict):
        self.hits.append(path + ("?" + urlencode(query, doseq=True) if query else ""))
        return 200, GIF, "image/gif"


class Site(PageServer):
    """A SearXNG-API fake whose result titles are hostile, and the pages it points to."""

    def __init__(self, tracker_url: str):
        self.tracker_url = tracker_url
        super().__init__(self.route)

    def route(self, path: str, query: dict):
        if path == "/search":
            results = [
                {"url": f"{self.url}/p1", "content": "Security notes",
                 "title": f"![t]({self.tracker_url}/title-img) Security notes"},
                {"url": f"{self.url}/p2", "content": "More security notes",
                 "title": f'<img src="{self.tracker_url}/title-raw"> More notes'},
            ]
            return 200, json.dumps({"query": "q", "results": results}).encode(), \
                "application/json"
        if path in ("/p1", "/p2"):
            return 200, ("<html><head><title>Notes</title></head><body><article><h1>Security"
                         " check notes</h1><p>A security check verifies that hostile answers "
                         "load nothing. It is done in a browser.</p></article></body></html>"
                         ).encode(), "text/html; charset=utf-8"
        return None


@pytest.fixture(scope="module")
def tracker():
    t = Tracker()
    yield t
    t.close()


@pytest.fixture(scope="module")
def hostile_app(tracker, tmp_path_factory):
    site = Site(tracker.url)
    with WireServer() as upstream:
        upstream.config.token_text = PAYLOAD.format(T=tracker.url)
        upstream.config.tokens = 3  # the answer streams in three visible steps
        upstream.config.delay = 0.4
        proc, url = start_app(tmp_path_factory.mktemp("hostile"), f"""
models:
  - {{name: wire, type: openai, endpoint_url: "{upstream.url}/v1", context_length: 8192}}
storage: {{db_path: "{{db}}"}}
websearch:
  provider: searxng
  searxng_url: {site.url}
  allow_private_addresses: true   # the test pages live on loopback
""")
        try:
            yield url
        finally:
            stop_process(proc)
            site.close()


# Records every CSP violation the page reports, from the first byte of the page on.
WATCH_CSP = """
window.__csp = [];
document.addEventListener('securitypolicyviolation', e => window.__csp.push(
    {directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile}));
"""

# What a person would see of the hostile markup in the bot messages.
INSPECT = """() => {
  const bots = [...document.querySelectorAll('[data-testid="bot"]')];
  const all = sel => bots.flatMap(b => [...b.querySelectorAll(sel)]);
  return {
    text: bots.map(b => b.innerText).join('\\n'),
    forms: all('form, input[type=password], textarea, select').map(e => e.outerHTML.slice(0, 120)),
    fixed: all('[style]').filter(
        e => /position\\s*:\\s*fixed/i.test(e.getAttribute('style'))).length,
    styled: all('[style*="url("]').length,
    media: all('img, video, audio, source, picture, iframe, object, embed, link, image')
        .map(e => e.outerHTML.slice(0, 80)).filter(h => !h.startsWith('<img src="data:')),
    jsLinks: all('a').filter(a => /^\\s*javascript:/i.test(a.getAttribute('href') || '')).length,
    imageLinks: all('a').filter(a => a.innerText.includes('image:')).map(a => a.href),
    codeBlocks: all('pre code').map(c => c.innerText),
    katex: all('.katex').length,
    xss: window.__xss === undefined ? null : window.__xss,
    csp: window.__csp,
  };
}"""


def open_page(browser, url):
    context = browser.new_context()
    context.add_init_script(WATCH_CSP)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    response = page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    return context, page, response, console


def expand_steps(page) -> None:
    """Open the folded web-search steps and sources, so their text is rendered too."""
    for header in page.query_selector_all("#chatbot .thought-group > [role=button]"):
        header.click()
    time.sleep(0.5)


def assert_inert(seen: dict, tracker: Tracker, when: str) -> None:
    assert tracker.hits == [], f"{when}: the browser fetched {tracker.hits}"
    assert seen["forms"] == [], f"{when}: form controls are rendered: {seen['forms']}"
    assert seen["fixed"] == 0, f"{when}: an element is pinned over the page"
    assert seen["styled"] == 0, f"{when}: inline CSS with url() survived"
    assert seen["media"] == [], f"{when}: remote media elements: {seen['media']}"
    assert seen["jsLinks"] == 0 and seen["xss"] is None
    assert seen["csp"] == [], f"{when}: CSP violations: {seen['csp']}"


def test_hostile_answer_loads_nothing_live_and_after_reload(browser, hostile_app, tracker):
    context, page, response, console = open_page(browser, hostile_app)
    policy = response.headers.get("content-security-policy", "")
    for directive in ("img-src 'self' data: blob:", "media-src 'self' data: blob:",
                      "form-action 'self'", "object-src 'none'", "base-uri 'self'",
                      "frame-ancestors 'self' https://huggingface.co https://*.hf.space"):
        assert directive in policy, (directive, policy)

    page.check("#web-search input")
    page.fill("#input textarea", QUESTION.format(T=tracker.url))
    page.keyboard.press("Enter")
    page.wait_for_selector("#input .stop-button", timeout=30_000)
    # Watch while it streams: every intermediate render must be inert too.
    covers: list[int] = []
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and not page.query_selector("#input .submit-button"):
        seen = page.evaluate(INSPECT)
        assert_inert(seen, tracker, "while streaming")
        covers.append(seen["text"].count("COVER"))
        time.sleep(0.1)
    assert page.query_selector("#input .submit-button"), "the answer never completed"
    assert {1, 2} & set(covers), f"no partial answer was ever shown: {sorted(set(covers))}"
    expand_steps(page)

    time.sleep(1.0)  # let any late loads (lazy images, media) happen
    seen = page.evaluate(INSPECT)
    assert_inert(seen, tracker, "after streaming")
    # What the payloads became: readable text and links, not markup.
    assert seen["text"].count("COVER") >= 3 and "<form" in seen["text"]
    assert f"{tracker.url}/md-img" in seen["imageLinks"]  # an image shown as a link
    assert any('<form action="/login">' in c for c in seen["codeBlocks"]), seen["codeBlocks"]
    assert any(f'<video src="{tracker.url}/nested-fence">' in c for c in seen["codeBlocks"])
    assert seen["katex"] >= 3  # LaTeX still renders under the CSP
    user = page.inner_text('[data-testid="user"]')
    assert "<img src=" in user and "image: q" in user  # the user's own text, as text
    steps = page.inner_text("#chatbot")
    assert "Sources" in steps and "Security notes" in steps  # hostile titles, shown as text

    # Reload: the same conversation, rebuilt from the database, is just as inert.
    page.reload()
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.click("#conversations label:has-text('Security check')", timeout=15_000)
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"bot\"]')]"
        ".some(b => b.innerText.includes('COVER'))", timeout=30_000)
    expand_steps(page)
    time.sleep(1.0)
    seen = page.evaluate(INSPECT)
    assert_inert(seen, tracker, "after reload")
    assert seen["katex"] >= 3 and "COVER" in seen["text"]
    assert not [m for m in console if "Content Security Policy" in m], console
    context.close()


def test_csp_stops_what_a_sanitizer_miss_would_load(browser, hostile_app, tracker):
    """The second line on its own: markup put into the page by script still loads nothing
    from another host, and a form cannot post elsewhere."""
    context, page, _, _ = open_page(browser, hostile_app)
    before = len(tracker.hits)
    page.evaluate("""T => {
        const box = document.createElement('div');
        box.innerHTML = `<img src="${T}/injected-img"><video src="${T}/injected-video"></video>
            <iframe src="${T}/injected-frame"></iframe>
            <form id="leak" action="${T}/injected-form" method="post"><input name="pw"></form>`;
        document.body.append(box);
        document.getElementById('leak').submit();
    }""", tracker.url)
    page.wait_for_function("() => window.__csp.length >= 3", timeout=10_000)
    time.sleep(1.0)
    blocked = page.evaluate("() => window.__csp")
    assert tracker.hits[before:] == [], tracker.hits[before:]
    directives = {v["directive"] for v in blocked}
    assert {"img-src", "media-src", "frame-src"} <= directives, blocked
    assert "form-action" in directives, blocked
    context.close()
