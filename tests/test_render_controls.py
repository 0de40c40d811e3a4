"""What render.py puts in the chat that the browser turns into controls or markup.

Gradio draws each step title (sources, notices, thinking) as a clickable role="button"
header; Debian's Chromium, with no emoji font, draws emoji there as empty boxes (issue 9
item 14), so titles are words only."""

import re

from chatui.render import assistant_view, model_line
from chatui.sanitize import sanitize_message

EMOJI = re.compile("[\U0001F000-\U0001FAFF\u2600-\u27BF\u2B00-\u2BFF\uFE0F]")


def test_step_titles_are_words_without_emoji():
    sources = [{"index": 1, "title": "Bridge", "url": "https://example.org/b",
                "passages": ["It is long."]}]
    view = assistant_view("An answer [1].", "stop", sources=sources,
                          notices=["Web search is unavailable right now."], model="smol")
    titles = [(m.get("metadata") or {}).get("title") for m in view]
    titles = [t for t in titles if t]
    assert titles == ["Sources (1)", "Web search is unavailable right now."]
    assert not any(EMOJI.search(t) for t in titles)


def test_model_line_comes_first_escaped_and_survives_the_sanitizer():
    view = assistant_view("Hi.", "stop", model="a<b>&c")
    assert view[0] == model_line("a<b>&c")
    assert view[0]["content"] == "<small>a&lt;b&gt;&amp;c</small>" and view[1]["content"] == "Hi."
    # The sanitizer keeps it as it is: the browser shows a small line, not markup as text.
    assert sanitize_message(view[0]) == view[0]
    assert assistant_view("Hi.", "stop")[0]["content"] == "Hi."  # no model, no line
