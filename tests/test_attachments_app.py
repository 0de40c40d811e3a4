"""Files through the real app and gradio_client's /chat: a PDF's page cited, the document
searched again on a later question, images to a vision model as content parts, and refusals
that store nothing. The model is the wire-format fake, so the exact request is readable."""

from __future__ import annotations

import json
import sqlite3

import pytest
from gradio_client import Client, handle_file

from tests.attachment_files import filler_pages, make_image, make_pdf, vision_app_config
from tests.conftest import start_app, stop_process
from tests.wire import WireServer

pytestmark = pytest.mark.slow
TOKEN = "attach-" + "a" * 40
FACT = "The boiling point of mercury is 356.7 degrees Celsius at sea level."


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attach-app")
    with WireServer() as upstream:
        upstream.config.tokens = 2
        proc, url = start_app(tmp, vision_app_config(
            upstream.url, "attachments:\n  max_documents_per_conversation: 2\n"))
        try:
            yield Client(url, verbose=False), upstream, tmp
        finally:
            stop_process(proc)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("files")
    pages = filler_pages(4)
    pages[1] += "\n\n" + FACT  # page 2
    (d / "metals.pdf").write_bytes(make_pdf(pages))
    (d / "red.png").write_bytes(make_image("PNG", (32, 24)))
    (d / "scan.pdf").write_bytes(make_pdf([""], scanned=True))
    return d


def rows(tmp, sql, args=()):
    con = sqlite3.connect(tmp / "chat.db")
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def ask(client, message, model="plain", conv="", files=None):
    """The /chat message as the browser's input sends it: {"text", "files"} with files."""
    if files:
        message = {"text": message, "files": [handle_file(str(f)) for f in files]}
    return client.predict(message=message, conversation_id=conv, model=model,
                          system_prompt="", temperature=0.5, top_p=0.9, max_new_tokens=8,
                          web_search=False, token=TOKEN, api_name="/chat")


def test_a_pdf_is_cited_by_page_and_searched_again_later(app, files):
    client, upstream, tmp = app
    chat, info = ask(client, "What is the boiling point of mercury?",
                     files=[files / "metals.pdf"])
    system = upstream.config.requests[-1]["messages"][0]
    assert system["role"] == "system" and "[1] metals.pdf, page 2" in system["content"]
    assert FACT in system["content"]
    # The chat shows the document above the question, and the sources under the answer.
    shown = json.dumps(chat)
    assert "Attached: `metals.pdf` (PDF, 4 pages)" in shown
    assert "metals.pdf, page 2" in shown
    (stored,) = rows(tmp, "SELECT sources FROM messages WHERE id = ?",
                     [info["assistant_message_id"]])
    assert json.loads(stored[0])[0]["title"] == "metals.pdf, page 2"
    # A later question in the same conversation, without files, searches it again.
    ask(client, "And at which pressure does mercury boil like that?",
        conv=info["conversation_id"])
    again = upstream.config.requests[-1]["messages"]
    assert "[1] metals.pdf, page 2" in again[0]["content"]
    assert again[-1] == {"role": "user",
                         "content": "And at which pressure does mercury boil like that?"}
    assert rows(tmp, "SELECT COUNT(*) FROM attachments WHERE conversation_id = ?",
                [info["conversation_id"]])[0][0] == 1


def test_an_image_reaches_a_vision_model_as_a_content_part(app, files):
    client, upstream, tmp = app
    chat, info = ask(client, "What colour is this?", model="eyes", files=[files / "red.png"])
    user = upstream.config.requests[-1]["messages"][-1]
    assert user["content"][0] == {"type": "text", "text": "What colour is this?"}
    assert user["content"][1]["type"] == "image_url"
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,")
    (kind, data), = rows(tmp, "SELECT kind, data FROM attachments a JOIN messages m "
                              "ON m.id = a.message_id WHERE m.conversation_id = ?",
                         [info["conversation_id"]])
    assert kind == "image" and data[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](data:image/" in json.dumps(chat)  # its preview, shown in the user's bubble
    # Retry answers the stored question again: with its image.
    client.predict(info["conversation_id"], "eyes", "", 0.5, 0.9, 16, False, TOKEN,
                   api_name="/retry")
    again = upstream.config.requests[-1]["messages"][-1]["content"]
    assert again[1] == user["content"][1]
    # A model without vision asked to retry gets the text alone, not a refusal mid-way.
    client.predict(info["conversation_id"], "plain", "", 0.5, 0.9, 16, False, TOKEN,
                   api_name="/retry")
    assert upstream.config.requests[-1]["messages"][-1] == {"role": "user",
                                                            "content": "What colour is this?"}


@pytest.mark.parametrize("model,name,says", [
    ("plain", "red.png", "plain does not read images"),
    ("plain", "scan.pdf", "no text layer"),
])
def test_refused_files_store_nothing(app, files, model, name, says):
    client, upstream, tmp = app
    before = rows(tmp, "SELECT (SELECT COUNT(*) FROM messages), "
                       "(SELECT COUNT(*) FROM attachments)")
    sent = len(upstream.config.requests)
    with pytest.raises(Exception, match=says):
        ask(client, "Look at this", model=model, files=[files / name])
    assert rows(tmp, "SELECT (SELECT COUNT(*) FROM messages), "
                     "(SELECT COUNT(*) FROM attachments)") == before
    assert len(upstream.config.requests) == sent  # the model was never asked


def test_files_need_a_question_and_documents_have_a_limit(app, files):
    client, upstream, tmp = app
    with pytest.raises(Exception, match="Add a question"):
        ask(client, "", files=[files / "metals.pdf"])
    _, info = ask(client, "first", files=[files / "metals.pdf"])
    conv = info["conversation_id"]
    ask(client, "second", conv=conv, files=[files / "metals.pdf"])
    n = rows(tmp, "SELECT COUNT(*) FROM messages")[0][0]
    with pytest.raises(Exception, match="would hold 3 documents; at most 2"):
        ask(client, "third", conv=conv, files=[files / "metals.pdf"])
    assert rows(tmp, "SELECT COUNT(*) FROM messages")[0][0] == n


def test_callers_without_files_are_unchanged(app):
    client, upstream, tmp = app
    chat, info = client.predict("Hello", "", "plain", "", 0.5, 0.9, 8, False, TOKEN,
                                api_name="/chat")
    assert info["finish_reason"] in ("stop", "length")
    assert upstream.config.requests[-1]["messages"][-1] == {"role": "user", "content": "Hello"}
