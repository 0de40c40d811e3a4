"""chatui/sanitize.py: hostile markdown/HTML in chat text renders inert; real content does not
change. The browser-level proof is tests/test_browser_security.py; here every case is
rendered by an independent CommonMark renderer (markdown-it-py) after cutting LaTeX the way
Gradio does, and the HTML is parsed for anything that loads, submits, styles or scripts.
Cases that depend on quirks of marked (the renderer Gradio bundles) are checked on the
sanitized text itself."""

from __future__ import annotations

import html
import re
import time
from html.parser import HTMLParser

import pytest

from chatui.csp import ContentSecurityPolicy, content_security_policy
from chatui.sanitize import (BLOCKED_TAGS, LATEX_DELIMITERS, host_allowed, sanitize_markdown,
                             sanitize_message)

T = "http://tracker.test"
MarkdownIt = pytest.importorskip("markdown_it").MarkdownIt
_MD = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

LOADS = {"img", "picture", "source", "video", "audio", "track", "iframe", "frame", "object",
         "embed", "link", "meta", "base", "style", "script", "image", "svg", "form", "input",
         "button", "textarea", "select", "option"}
URL_ATTRS = {"src", "srcset", "background", "action", "formaction", "poster", "data", "style"}


class _Finder(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = {k for k, _ in attrs}
        if tag in LOADS or names & URL_ATTRS or any(k.startswith("on") for k in names):
            self.found.append(f"<{tag} {attrs}>")
        for k, v in attrs:
            if k == "href" and re.match(r"\s*(javascript|data|vbscript):", v or "", re.I):
                self.found.append(f"<{tag} {attrs}>")


def render(md: str) -> str:
    """Roughly what the browser renders: LaTeX cut out first and put back escaped (as
    Gradio 6.31 does), CommonMark with raw HTML for the rest."""
    maths: list[str] = []

    def keep(m):
        maths.append(m.group(0))
        return f"MATHSPAN{len(maths) - 1}X"

    for d in LATEX_DELIMITERS:
        md = re.sub(re.escape(d["left"]) + r"([\s\S]+?)" + re.escape(d["right"]), keep, md)
    html = _MD.render(md)
    return re.sub(r"MATHSPAN(\d+)X", lambda m: maths[int(m.group(1))].replace("<", "&lt;")
                  .replace('"', "&quot;"), html)


def dangerous(md: str) -> list[str]:
    f = _Finder()
    f.feed(render(md))
    return f.found


PAYLOADS = {
    "img": f'<img src="{T}/a">',
    "img uppercase, unquoted": f"<IMG SRC={T}/a>",
    "img onerror": "<img src=x onerror=alert(1)>",
    "img srcset": f'<img srcset="{T}/a 2x, {T}/b 3x">',
    "markdown image": f"![]({T}/a)",
    "markdown image with title": f'![a cat]({T}/a.png "A cat")',
    "markdown image, angle brackets": f"![x](<{T}/a b.png>)",
    "reference image": f"![x][r]\n\n[r]: {T}/a",
    "collapsed reference image": f"![r][]\n\n[r]: {T}/a",
    "shortcut reference image": f'![r]\n\n[r]: <{T}/a> "t"',
    "image inside a link": f"[![badge]({T}/b.svg)](https://ok.test)",
    "video": f'<video src="{T}/v" autoplay></video>',
    "video poster": f'<video poster="{T}/p"></video>',
    "audio source": f'<audio controls><source src="{T}/a.mp3"></audio>',
    "picture": f'<picture><source srcset="{T}/p"><img src="{T}/q"></picture>',
    "position fixed": '<div style="position:fixed;top:0;left:0;width:100%;height:100%">X</div>',
    "css url": f'<p style="background:url({T}/bg)">x</p>',
    "style element": f"<style>body{{background:url({T}/s)}}</style>",
    "phishing form": f'<form action="{T}/phish"><input type=password name=pw>'
                     "<button>Log in</button></form>",
    "textarea and select": "<textarea>x</textarea><select><option>1</option></select>",
    "iframe": f'<iframe src="{T}/f"></iframe>',
    "object and embed": f'<object data="{T}/o"></object><embed src="{T}/e">',
    "stylesheet link": f'<link rel="stylesheet" href="{T}/x.css">',
    "meta refresh": f'<meta http-equiv="refresh" content="0;url={T}/">',
    "base": f'<base href="{T}/">',
    "svg image": f'<svg><image href="{T}/i"/></svg>',
    "table background": f'<table background="{T}/t"><tr><td>x</td></tr></table>',
    "script": "<script>alert(1)</script>",
    "html link to javascript:": '<a href="javascript:alert(1)">x</a>',
    "markdown link to javascript:": "[x](javascript:alert(1))",
    "javascript: in capitals": "[x](JaVaScRiPt:alert(1))",
    "javascript: as entities": "[x](&#106;avascript:alert(1))",
    "data: link": "[x](data:text/html;base64,PHNjcmlwdD4=)",
    "reference link to javascript:": "[x][j]\n\n[j]: javascript:alert(1)",
    "html in a link title": f'[x](https://ok.test "<img src={T}/t>")',
    "html block after text": f"Intro\n\n<div>\n<img src={T}/d>\n</div>",
    "list item html": f"- <img src={T}/l>\n- ![i]({T}/m)",
    "blockquote html": f"> <form action={T}/q><input></form>",
    "table cell html": f"| a | b |\n|---|---|\n| <img src={T}/c> | ![x]({T}/d) |",
    "inline code next to html": f"`x` <img src={T}/y> `z`",
    "unclosed code span": f"``x <img src={T}/y>",
    "backslash-escaped lt": f"\\<img src={T}/y>",
    "comment": f"<!-- <img src={T}/c> -->",
    "html after a list fence": f"- a\n  ```\n<img src={T}/f>\n  ```",
}

HOSTILE_ANSWER = "\n\n".join(PAYLOADS.values()) + "\n\n```html\n<form><input></form>\n```\n"


def test_the_checker_sees_every_payload_unsanitized():
    """Without sanitize_markdown each payload renders something that loads, submits,
    styles or scripts (else the next test would prove nothing) — except those that only
    marked, not markdown-it, renders unsafely: markdown-it refuses javascript:/data: links
    itself, and the rest matter where the two parsers disagree."""
    harmless = {name for name, md in PAYLOADS.items() if not dangerous(md)}
    assert harmless == {"markdown link to javascript:", "javascript: in capitals",
                        "javascript: as entities", "data: link", "reference link to javascript:",
                        "html in a link title", "backslash-escaped lt", "comment"}


@pytest.mark.parametrize("name", list(PAYLOADS))
def test_payload_renders_inert(name):
    out = sanitize_markdown(PAYLOADS[name])
    assert dangerous(out) == [], out
    # No link target with a script or data scheme, however it is spelled.
    assert not re.search(r"(?i)\]\(\s*<?(javascript|vbscript|data):|\]:\s*<?(javascript|data):",
                         html.unescape(out)), out
    assert "<img" not in out and "<form" not in out and "<!--" not in out
    assert sanitize_markdown(out) == out  # idempotent: sanitizing twice changes nothing


def test_every_streamed_prefix_renders_inert():
    """The chat re-renders the answer at every streamed update: half a tag or half an image
    must be as inert as the whole."""
    for end in range(0, len(HOSTILE_ANSWER) + 1, 7):
        prefix = HOSTILE_ANSWER[:end]
        assert dangerous(sanitize_markdown(prefix)) == [], prefix[-80:]


def test_markup_becomes_visible_text():
    out = sanitize_markdown('<form action="https://x.test"><input type=password></form>')
    assert "<form" not in out and "&lt;form" in out
    shown = html.unescape(re.sub(r"<[^>]+>", "", render(out)))
    assert '<form action="https://x.test"><input type=password></form>' in shown


def test_images_become_links_that_name_their_host():
    out = sanitize_markdown(f'![a cat]({T}/cat.png "A cat")')
    assert out == f'[image: a cat (tracker.test)]({T}/cat.png "A cat")'
    assert sanitize_markdown(f"![]({T}/q?secret=1)") == f"[image: tracker.test/q]({T}/q?secret=1)"
    assert sanitize_markdown("![x](javascript:alert(1))") == "image: x"
    # Reference style: the "!" is escaped, the rest stays a link to the (checked) target.
    assert sanitize_markdown(f"![x][r]\n\n[r]: {T}/a") == f"\\![x][r]\n\n[r]: {T}/a"


def test_allow_listed_hosts_keep_inline_images():
    hosts = ["upload.wikimedia.org", "*.example.org"]
    ok = "![map](https://upload.wikimedia.org/map.png)"
    assert sanitize_markdown(ok, hosts) == ok
    assert sanitize_markdown("![m](https://cdn.example.org/m.png)", hosts).startswith("![m]")
    assert sanitize_markdown("![r][r]\n\n[r]: https://cdn.example.org/r.png", hosts) \
        .startswith("![r][r]")
    for url in ("http://upload.wikimedia.org/map.png",  # https only
                "https://upload.wikimedia.org.evil.test/x.png", "https://example.org.evil/x",
                "https://evilexample.org/x.png", f"{T}/x.png"):
        assert sanitize_markdown(f"![m]({url})", hosts).startswith("[image: m"), url
    assert host_allowed("https://a.b.example.org/x", hosts)
    assert not host_allowed("https://example.org/x", ["*.example.org"])


def test_links_keep_safe_targets_only():
    assert sanitize_markdown("[a](javascript:alert(1))") == "a"
    assert sanitize_markdown("[a](java\tscript:alert(1))") == "[a](java\tscript:alert(1))" \
        or "javascript" not in render(sanitize_markdown("[a](java\tscript:alert(1))"))
    assert sanitize_markdown("[j]: javascript:alert(1)") == "[j]: #"
    for keep in ("[docs](https://hf.co/docs)", "[mail](mailto:a@b.test)", "[rel](/path)",
                 "[anchor](#top)", "<https://hf.co>"):
        assert sanitize_markdown(keep) == keep


def test_code_is_shown_exactly_as_written():
    code = ('Here is the form you asked for:\n\n```html\n<form action="/login" method="post">\n'
            '  <input type="password" name="pw" style="position:fixed">\n'
            "  <img src=\"logo.png\">\n</form>\n```\n")
    assert sanitize_markdown(code) == code
    in_list = ("1. Install:\n\n   ```bash\n   echo '<b>'\n   ```\n"
               "2. Nested:\n   - x\n     ```html\n     <video src=a.mp4></video>\n     ```\n")
    assert sanitize_markdown(in_list) == in_list
    nested = "````markdown\n```html\n<img src=x>\n```\n````\n"
    assert sanitize_markdown(nested) == nested
    tilde = "~~~\n<iframe src=x></iframe>\n~~~\n"
    assert sanitize_markdown(tilde) == tilde


def test_inline_code_with_tags_looks_the_same_and_is_inert():
    out = sanitize_markdown("Use the `<img src=x>` tag, or `<form>`.")
    assert out == "Use the <code>&lt;img src=x&gt;</code> tag, or <code>&lt;form&gt;</code>."
    assert render(out) == render("Use the `<img src=x>` tag, or `<form>`.")
    assert sanitize_markdown("`x = [1, 2]` and ``a`b``") == "`x = [1, 2]` and ``a`b``"


@pytest.mark.parametrize("text", [
    "**Bold**, _italic_, ~~gone~~\n\n> quote\n\n---\n\n# Title\n\n1. one\n2. two\n",
    "Euler: $e^{i\\pi}+1=0$, $$\\int_0^1 x^2\\,dx=\\frac13$$, \\(a<b\\) and \\[x>y\\].",
    "The bridge is 2,400 m long [[1]](https://example.org/a \"The Bridge\")[[2]](https://b.test).",
    "| a | b |\n|---|---|\n| line1<br>line2 | H<sub>2</sub>O |\n",
    "See <https://hf.co> and https://hf.co/docs.",
    "Shell: `echo $HOME`, then\n\n```bash\necho \"$PATH\" > out.txt\n```\n",
    "a < b and c > d, x<5, <- arrow, 3 <= 4",
])
def test_ordinary_answers_are_unchanged(text):
    assert sanitize_markdown(text) == text


def test_citation_links_survive():
    from chatui.websearch.context import render_citations

    cited = render_citations("It opened in 1987 [1].", [
        {"index": 1, "url": "https://example.org/bridge", "title": 'The "Bridge"'}])
    assert sanitize_markdown(cited) == cited and "](https://example.org/bridge" in cited


def test_mermaid_blocks_are_shown_as_code():
    # Gradio inserts a ```mermaid block's text into the page as raw HTML.
    out = sanitize_markdown(f"```mermaid\ngraph TD\nA[<img src={T}/m>]-->B\n```\n")
    assert out.startswith("```mermaid-code\n") and f"<img src={T}/m>" in out


@pytest.mark.parametrize("text, must_not_contain", [
    # A bare URL (GFM autolink) swallows the backslash of "\<": marked then reads a tag.
    (f"see http://a.test/x\\<img src={T}/y>", "<img"),
    # A fence whose line holds an unmatched $ does not interrupt a paragraph in Gradio's
    # marked (its LaTeX extension cuts the paragraph there): that line is prose.
    ("x $\n   ```[j](javascript:alert(1))\\[\n\nmore\n", "javascript:"),
    ("\\(\n```\\(\n\n\n<img src=x>\n", "<img"),
    # A fence on the last line does not interrupt a paragraph either (mid-stream answers).
    (f"text\n```![a]({T}/i)", f"![a]({T}"),
    # A closing fence indented 4 spaces is no closer for marked: do not fall out of step.
    ("```x\nA\n    ```\n```\n<sub>2</sub>\n\n\\\\<img src=x>\n", "<img"),
    # In a list item, a line indented less than the fence ends the item, and the code.
    (f"- a\n  ```\n<img src={T}/f>\n  ```\n", "<img"),
    # A definition line with trailing text is no definition: its link is checked.
    ("[r]: http://t/r [j](javascript:alert(1))", "javascript:"),
])
def test_marked_quirks_found_by_differential_fuzzing(text, must_not_contain):
    assert must_not_contain not in sanitize_markdown(text)


def test_latex_is_cut_with_the_components_own_delimiters():
    # With only $$ as delimiter, "$...$" is no math: its HTML must be escaped.
    only_display = [{"left": "$$", "right": "$$", "display": True}]
    assert "&lt;img" in sanitize_markdown(f"$<img src={T}/x>$", latex_delimiters=only_display)
    # Math spans are left alone: Gradio escapes them when it puts them back.
    assert sanitize_markdown("$a<b$") == "$a<b$"


def test_pathological_input_stays_fast():
    for text in ("[a](" * 5000, "[" * 20000, "![" * 10000, "<a" * 10000, "`" * 20000,
                 "- a\n      ```\n" * 2000):
        t = time.perf_counter()
        sanitize_markdown(text + "x")  # a fresh string: no cache hit
        assert time.perf_counter() - t < 1.0, text[:10]


def test_messages_and_step_titles_are_sanitized():
    import gradio as gr

    msg = {"role": "assistant", "content": f"![x]({T}/a)",
           "metadata": {"title": f"Searching for “<img src={T}/q>”", "status": "done"}}
    out = sanitize_message(msg)
    assert out["content"].startswith("[image: x") and "&lt;img" in out["metadata"]["title"]
    assert msg["content"] == f"![x]({T}/a)"  # the caller's dict is not changed
    parts = sanitize_message({"role": "user", "content": [
        {"type": "text", "text": "<b>x</b><img src=y>"}, {"type": "file", "file": {"path": "p"}}]})
    assert parts["content"][0]["text"] == "<b>x</b>&lt;img src=y>"
    assert parts["content"][1] == {"type": "file", "file": {"path": "p"}}
    cm = sanitize_message(gr.ChatMessage(role="assistant", content="<form>",
                                         metadata={"title": "![t](http://t/t)"}))
    assert cm.content == "&lt;form>" and cm.metadata["title"].startswith("[image: t")


def test_safe_chatbot_sanitizes_everything_it_sends():
    import gradio as gr

    from chatui.safe_chatbot import SafeChatbot, safe_chatbot

    with gr.Blocks() as demo:
        bot = safe_chatbot(latex_delimiters=LATEX_DELIMITERS)
        allowing = safe_chatbot(image_hosts=["img.example.org"])
    comp = demo.get_config_file()["components"][0]
    assert comp["type"] == "chatbot"  # the browser's own Chatbot renders it
    assert comp["props"]["allow_tags"] == BLOCKED_TAGS and comp["props"]["sanitize_html"] is True
    assert "latex_delimiters" in comp["props"] and "image_hosts" not in comp["props"]
    assert "img" not in allowing.allow_tags
    sent = bot.postprocess([
        {"role": "user", "content": f"<img src={T}/u>"},
        # Gradio would dedent this (inspect.cleandoc): the sanitizer judges the dedented text.
        {"role": "assistant", "content": f"    x\n    <form action={T}>\n    ![i]({T}/i)"},
        {"role": "assistant", "content": "log", "metadata": {"title": f"![t]({T}/t)"}},
        gr.ChatMessage(role="assistant", content=f'<div style="position:fixed">{T}</div>'),
    ]).root
    texts = [m.content[0].text for m in sent]
    assert texts[0] == f"&lt;img src={T}/u>"
    assert texts[1] == f"x\n&lt;form action={T}>\n[image: i (tracker.test)]({T}/i)"
    assert sent[2].metadata["title"] == f"[image: t (tracker.test)]({T}/t)"
    assert texts[3].startswith("&lt;div style=")
    # A handler that returns gr.Chatbot(...) as an update makes Gradio rebuild the component
    # from its class and constructor arguments, and use that copy from then on.
    for original in (bot, allowing):
        rebuilt = original.__class__(**{**original.constructor_args, "render": False})
        assert isinstance(rebuilt, SafeChatbot) and rebuilt.image_hosts == original.image_hosts
        shown = rebuilt.postprocess([{"role": "assistant", "content": "![a](https://img.example"
                                      ".org/a.png)<form>"}]).root[0].content[0].text
        assert "&lt;form>" in shown
        assert shown.startswith("![a]" if original is allowing else "[image: a")


def test_safe_chatbot_writes_no_stub_files():
    from pathlib import Path

    import chatui.safe_chatbot as module

    # Gradio writes a .pyi next to every Component subclass it sees defined, unless told not to.
    assert not Path(module.__file__).with_suffix(".pyi").exists()
    module._with_hosts(("another.example.org",))
    assert not Path(module.__file__).with_suffix(".pyi").exists()


def test_image_hosts_setting_is_validated():
    from chatui.config import RenderSettings

    assert RenderSettings(image_hosts=[" Upload.Wikimedia.org ", "*.example.org"]).image_hosts \
        == ["upload.wikimedia.org", "*.example.org"]
    for bad in ("https://x.org", "x.org/path", "x.org:443", "*", "a b.org", "x.org; script-src *"):
        with pytest.raises(ValueError):
            RenderSettings(image_hosts=[bad])


def test_csp_policy_names_what_the_page_may_load():
    policy = content_security_policy(["upload.wikimedia.org"])
    d = dict(part.split(" ", 1) for part in policy.split("; "))
    assert d["img-src"] == "'self' data: blob: https://upload.wikimedia.org"
    assert d["media-src"] == d["img-src"]
    assert d["object-src"] == "'none'" and d["base-uri"] == "'self'"
    assert d["form-action"] == "'self'" and d["default-src"] == "'self'"
    assert d["frame-ancestors"] == "'self' https://huggingface.co https://*.hf.space"
    assert "img-src 'self' data: blob:;" in content_security_policy()


async def test_csp_middleware_sets_the_header_on_every_response():
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def page(request):
        return PlainTextResponse("hi", headers={"Content-Security-Policy": "default-src *"})

    app = ContentSecurityPolicy(Starlette(routes=[Route("/", page)]), policy="img-src 'self'")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://t") as client:
        r = await client.get("/")
        missing = await client.get("/nowhere")
    assert r.headers.get_list("content-security-policy") == ["img-src 'self'"]
    assert missing.status_code == 404 and missing.headers["content-security-policy"]


@pytest.mark.parametrize("typed", ["a <div>x</div> b", "fish & chips <img src=x>",
                                   "code `<b>` here", "plain text", "x < y and y > z"])
def test_editing_a_sanitized_message_gives_the_users_own_text_back(typed):
    """The edit box shows the message as displayed (tags as text); an edit must resend what
    the user typed, not the escapes."""
    from chatui.handlers import unescape_shown

    assert unescape_shown(sanitize_markdown(typed)) == typed
