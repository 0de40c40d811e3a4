"""How attachments show: previews as inline data URLs in the user's own bubble only, the
sanitizer still refusing every other image, and files only from Gradio's upload folder."""

from __future__ import annotations

import base64

import pytest

from chatui.attachments import AttachmentError
from chatui.attachments.flow import _checked_path, bubble, split_message, upload_roots
from chatui.safe_chatbot import safe_message
from chatui.sanitize import INLINE_DATA_IMAGES, sanitize_markdown
from tests.attachment_files import make_image

PNG = "data:image/png;base64," + base64.b64encode(make_image()).decode()


def text_of(msg) -> str:
    return msg["content"][0]["text"]


def test_a_data_image_shows_in_a_user_bubble_but_not_in_an_answer():
    md = f"![cat]({PNG})"
    user = text_of(safe_message({"role": "user", "content": md}))
    assert user == md
    bot = text_of(safe_message({"role": "assistant", "content": md}))
    assert "](data:" not in bot and "![" not in bot


@pytest.mark.parametrize("url", [
    "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",  # SVG: a document, not pixels
    "data:text/html;base64,PHNjcmlwdD4=",
    "data:image/png,not-base64<script>",
    "https://tracker.example/pixel.png",
])
def test_only_base64_raster_data_urls_pass_even_for_the_user(url):
    out = sanitize_markdown(f"![x]({url})", (INLINE_DATA_IMAGES,))
    assert not out.startswith("![")


def test_the_bubble_names_documents_and_shows_previews():
    rows = [{"kind": "image", "name": "a [b].png", "preview": b"\xff\xd8\xffjpeg",
             "meta": {"preview_mime": "image/jpeg"}},
            {"kind": "document", "name": "report.pdf",
             "meta": {"pages": 12, "doc_kind": "pdf"}},
            {"kind": "document", "name": "notes.md", "meta": {"doc_kind": "markdown"}}]
    b = bubble(rows)
    assert b.startswith("![a  b .png](data:image/jpeg;base64,")
    assert "Attached: `report.pdf` (PDF, 12 pages) · `notes.md` (Markdown)" in b
    shown = text_of(safe_message({"role": "user", "content": b}))
    assert "](data:image/jpeg;base64," in shown


def test_message_values_from_the_browser_and_the_api():
    assert split_message({"text": "hi", "files": ["/tmp/gradio/x/a.pdf"]}) == (
        "hi", ["/tmp/gradio/x/a.pdf"])
    assert split_message("hi") == ("hi", [])
    assert split_message(None) == (None, [])


def test_files_outside_gradios_upload_folder_are_refused(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("top secret")
    for item in (str(secret), {"path": str(secret)}, {"path": "/etc/passwd"},
                 {"path": str(upload_roots()[0] / ".." / "etc" / "passwd")}):
        with pytest.raises(AttachmentError, match="not uploaded through this app"):
            _checked_path(item)
    inside = upload_roots()[0] / "abc" / "a.txt"
    assert _checked_path(str(inside)) == str(inside)
    assert _checked_path(("a.txt", b"x")) == ("a.txt", b"x")  # from code, not a client
