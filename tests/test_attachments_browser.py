"""Real Chromium: attach an image and a PDF in the one input, see them before sending, send,
see them in the chat, again after a reload (rebuilt from the store), and in a share link
opened by another browser. With attachments turned off the input has no attach button."""

from __future__ import annotations

import pytest

from tests.attachment_files import filler_pages, make_image, make_pdf, vision_app_config
from tests.conftest import start_app, stop_process
from tests.wire import WireServer

pytestmark = [pytest.mark.slow, pytest.mark.browser]
ATTACH_BUTTON = 'button[data-testid="upload-button"]'
FACT = "The boiling point of mercury is 356.7 degrees Celsius at sea level."


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attach-browser")
    with WireServer() as upstream:
        upstream.config.tokens = 3
        proc, url = start_app(tmp, vision_app_config(upstream.url))
        try:
            yield url, upstream, tmp
        finally:
            stop_process(proc)


def user_html(page) -> str:
    return "\n".join(e.inner_html() for e in page.query_selector_all('[data-testid="user"]'))


def test_attach_send_and_see_it_after_reload(browser, app, tmp_path):
    url, upstream, _ = app
    pages = filler_pages(3)
    pages[2] += "\n\n" + FACT
    pdf, png = tmp_path / "metals.pdf", tmp_path / "red.png"
    pdf.write_bytes(make_pdf(pages))
    png.write_bytes(make_image("PNG", (48, 32)))

    context = browser.new_context()
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    # The attach button takes images only for a model that sees them (the default, "eyes").
    accept = page.get_attribute("#input input[type=file]", "accept") or ""
    assert ".png" in accept and ".pdf" in accept
    assert page.query_selector(f"#input {ATTACH_BUTTON}")
    page.set_input_files("#input input[type=file]", [str(png), str(pdf)])
    # Before sending: a preview of the image and a file chip for the PDF, in the input.
    page.wait_for_selector("#input img.thumbnail-image", timeout=15_000)
    page.wait_for_function("() => document.querySelectorAll("
                           "'#input [aria-label=\"File thumbnail\"]').length === 2",
                           timeout=15_000)
    assert "red.png" in page.get_attribute("#input img.thumbnail-image", "src")
    page.fill("#input textarea", "What is the boiling point of mercury?")
    page.keyboard.press("Enter")
    page.wait_for_selector("#input .stop-button", timeout=30_000)
    page.wait_for_selector("#input .submit-button", timeout=60_000)
    page.wait_for_function("() => document.querySelectorAll('[data-testid=\"bot\"]').length > 0"
                           " && document.querySelector('#chatbot').innerText"
                           ".includes('metals.pdf, page 3')", timeout=30_000)

    sent = upstream.config.requests[-1]["messages"]
    assert "[1] metals.pdf, page 3" in sent[0]["content"]
    assert [p["type"] for p in sent[-1]["content"]] == ["text", "image_url"]

    def check_history():
        html = user_html(page)
        assert '<img src="data:image/' in html, html[:500]
        text = page.inner_text("#chatbot")
        assert "metals.pdf" in text and "What is the boiling point of mercury?" in text
        # The input is empty again: nothing left attached.
        assert page.input_value("#input textarea") == ""
        assert not page.query_selector("#input img")

    check_history()
    page.reload()
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.wait_for_selector("#conversations label", timeout=15_000)
    page.click("#conversations label:has-text('What is the boiling point')")
    page.wait_for_selector('[data-testid="user"] img', timeout=15_000)
    check_history()
    check_shared_link(browser, page)
    # Another browser (another anonymous user) sees none of it.
    other = browser.new_context().new_page()
    other.goto(url)
    other.wait_for_selector("#input textarea", timeout=30_000)
    other.wait_for_timeout(1000)
    assert "boiling point" not in other.inner_text("#conversations")
    other.context.close()

    # A model without vision: the attach button no longer offers images.
    page.click("#model input")
    page.click("li:has-text('plain')")
    page.wait_for_function("() => !(document.querySelector('#input input[type=file]')"
                           ".getAttribute('accept') || '').includes('.png')", timeout=10_000)
    assert ".pdf" in page.get_attribute("#input input[type=file]", "accept")
    context.close()


def check_shared_link(browser, page):
    """Share the conversation on screen; a browser with no token of the owner's opens the
    link and sees the same image preview above the question, and the document's name; it
    continues the conversation and its copy shows them too."""
    preview = page.get_attribute('[data-testid="user"] img', "src")
    page.click(".sidebar button:has-text('Share') >> nth=0")
    page.click("#share-conversation")
    page.wait_for_function("() => (document.querySelector('#share-link textarea, #share-link "
                           "input')?.value || '').includes('?share=')", timeout=15_000)
    link = page.eval_on_selector("#share-link textarea, #share-link input", "e => e.value")
    viewer = browser.new_context().new_page()
    viewer.goto(link)
    viewer.wait_for_selector("#share-view", state="visible", timeout=30_000)
    viewer.wait_for_selector('[data-testid="user"] img', timeout=15_000)
    assert viewer.get_attribute('[data-testid="user"] img', "src") == preview
    assert preview.startswith("data:image/")
    html = user_html(viewer)
    assert html.index("<img") < html.index("What is the boiling point of mercury?")
    text = viewer.inner_text("#chatbot")
    assert "Attached: metals.pdf (PDF, 3 pages)" in text, text[:500]
    assert not viewer.query_selector('[data-testid="bot"] img')   # only the user's bubble
    # Continued into the viewer's own history: the preview comes along, the PDF by name only.
    viewer.click("#continue-share")
    viewer.wait_for_function("() => location.search.includes('c=')", timeout=15_000)
    viewer.reload()
    viewer.wait_for_selector('[data-testid="user"] img', timeout=30_000)
    assert viewer.get_attribute('[data-testid="user"] img', "src") == preview
    assert "metals.pdf (PDF, 3 pages, text not shared)" in viewer.inner_text("#chatbot")
    viewer.context.close()


def test_no_attach_button_when_attachments_are_off(browser, tmp_path):
    """`attachments.enabled: false`: no attach button (the server refuses files anyway)."""
    with WireServer() as upstream:
        upstream.config.tokens = 2
        proc, url = start_app(tmp_path, vision_app_config(upstream.url,
                                                          "attachments:\n  enabled: false\n"))
        try:
            page = browser.new_context().new_page()
            page.goto(url)
            page.wait_for_selector("#input textarea", timeout=30_000)
            page.fill("#input textarea", "Plain text still goes")
            page.keyboard.press("Enter")
            page.wait_for_selector('[data-testid="bot"]', timeout=30_000)
            assert not page.query_selector(f"#input {ATTACH_BUTTON}")
            page.context.close()
        finally:
            stop_process(proc)


def test_a_refused_file_is_one_line_and_the_message_stays(browser, app, tmp_path):
    url, upstream, tmp = app
    scan = tmp_path / "scan.pdf"
    scan.write_bytes(make_pdf(["", ""], scanned=True))
    sent = len(upstream.config.requests)
    page = browser.new_context().new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.set_input_files("#input input[type=file]", [str(scan)])
    page.wait_for_selector('#input [aria-label="File thumbnail"]', timeout=15_000)
    page.fill("#input textarea", "Summarise this scan")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.body.innerText.includes('the PDF has no text layer')",
                           timeout=15_000)
    # Nothing was sent or shown: the text and the file wait in the input to be fixed.
    assert page.input_value("#input textarea") == "Summarise this scan"
    assert page.query_selector('#input [aria-label="File thumbnail"]')
    assert not page.query_selector('[data-testid="user"]')
    assert len(upstream.config.requests) == sent
    page.context.close()


def test_a_too_long_message_is_told_in_the_page_and_stays(browser, app):
    """The input's check runs unqueued (fast); its refusal is shown by a queued re-check,
    since Gradio shows no toast for an unqueued event's error."""
    url, upstream, _ = app
    sent = len(upstream.config.requests)
    page = browser.new_context().new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.fill("#input textarea", "x" * 16_001)
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.body.innerText.includes('16,001 characters')",
                           timeout=15_000)
    assert len(page.input_value("#input textarea")) == 16_001
    assert len(upstream.config.requests) == sent
    page.context.close()


PUT_FILE = """([how, name, b64, mime]) => {
    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([bytes], name, {type: mime}));
    const target = how === 'paste' ? document.querySelector('#input textarea')
                                   : document.querySelector('#input .full-container');
    if (how === 'paste') {
        target.dispatchEvent(new ClipboardEvent('paste', {clipboardData: dt, bubbles: true,
                                                          cancelable: true}));
    } else {
        for (const type of ['dragenter', 'dragover', 'drop'])
            target.dispatchEvent(new DragEvent(type, {dataTransfer: dt, bubbles: true,
                                                      cancelable: true}));
    }
}"""


@pytest.mark.parametrize("how", ["paste", "drop"])
def test_an_image_can_be_pasted_or_dropped(browser, app, how):
    import base64

    url, upstream, _ = app
    page = browser.new_context().new_page()
    page.goto(url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    png = base64.b64encode(make_image("PNG", (20, 20), (0, 128, 0))).decode()
    page.evaluate(PUT_FILE, [how, f"{how}d.png", png, "image/png"])
    page.wait_for_selector("#input img.thumbnail-image", timeout=15_000)
    page.fill("#input textarea", f"What colour is the {how}d square?")
    page.keyboard.press("Enter")
    page.wait_for_selector('[data-testid="user"] img', timeout=30_000)
    page.wait_for_selector("#input .submit-button", timeout=60_000)
    user = upstream.config.requests[-1]["messages"][-1]
    assert user["content"][0]["text"] == f"What colour is the {how}d square?"
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    page.context.close()
