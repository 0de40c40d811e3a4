"""Documents in a chat turn, against the wire-format model server: what the model reads, how
the answer cites, and one numbering with web sources."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.attachments.docsearch import index_document
from chatui.attachments.documents import extract_document
from chatui.chat import ChatService, TurnRequest, TurnResult
from chatui.render import assistant_view
from chatui.websearch.search import SearchResult
from tests.attachment_files import filler_pages, make_pdf

MERCURY = "The boiling point of mercury is 356.7 degrees Celsius at sea level."


def service(url: str, provider=None) -> ChatService:
    from chatui.config import Settings

    settings = Settings.model_validate({
        "models": [{"name": "wire", "type": "openai", "endpoint_url": url + "/v1",
                    "context_length": 8192}],
        "websearch": {"allow_private_addresses": True, "max_results": 1}})
    backend = RemoteBackend("wire", url + "/v1", context_length=8192,
                            defaults=GenerationParams(max_new_tokens=16))
    return ChatService(settings, {"wire": backend}, search_provider=provider)


@pytest.fixture(scope="module")
def metals():
    pages = filler_pages(5)
    pages[3] += "\n\n" + MERCURY  # page 4
    return index_document(extract_document("metals.pdf", make_pdf(pages)))


async def run(svc, req):
    result = TurnResult()
    snaps = [s async for s in svc.respond(req, result)]
    return snaps, result


async def test_the_model_reads_the_right_page_and_the_answer_cites_it(wire_server, metals):
    wire_server.config.script = [{"content": "It boils at 356.7 °C [1]."}]
    req = TurnRequest(message="What is the boiling point of mercury?", history=[],
                      model="wire", documents=[metals])
    snaps, result = await run(service(wire_server.url), req)
    sent = wire_server.config.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and "[1] metals.pdf, page 4" in sent[0]["content"]
    assert MERCURY in sent[0]["content"]
    assert sent[-1] == {"role": "user", "content": "What is the boiling point of mercury?"}
    assert result.sources[0]["title"] == "metals.pdf, page 4" and result.sources[0]["page"] == 4
    steps = [m for m in snaps[-1] if (m.get("metadata") or {}).get("title", "").startswith("Read ")]
    assert steps and "[1] metals.pdf, page 4" in steps[0]["metadata"]["log"]
    view = assistant_view(result.text, result.finish_reason, sources=result.sources)
    listing = [m for m in view if (m.get("metadata") or {}).get("title", "").startswith("Sources")]
    assert "1. metals.pdf, page 4" in listing[0]["content"]


class _Site:
    """One local web page for the web-search half (public engines are faked, pages are real)."""

    def __init__(self):
        page = (b"<html><head><title>Mercury facts</title></head><body><article><h1>Mercury"
                b"</h1><p>" + b"Mercury is a liquid metal that boils at high temperature. " * 10
                + b"</p></article></body></html>")

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mercury"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    async def search(self, query: str, max_results: int):
        return [SearchResult("Mercury facts", self.url, "liquid metal")]


async def test_web_and_documents_share_one_numbering(wire_server, metals):
    site = _Site()
    try:
        req = TurnRequest(message="What is the boiling point of mercury?", history=[],
                          model="wire", documents=[metals], web_search=True)
        snaps, result = await run(service(wire_server.url, site), req)
    finally:
        site.httpd.shutdown()
    idx = [s["index"] for s in result.sources]
    assert idx == list(range(1, len(idx) + 1)) and len(idx) >= 2
    docs = [s for s in result.sources if s.get("kind") == "document"]
    web = [s for s in result.sources if s.get("url", "").startswith("http")]
    assert docs[0]["index"] == 1 and web[0]["index"] == len(docs) + 1
    system = wire_server.config.requests[-1]["messages"][0]["content"]
    assert f"[{web[0]['index']}] Mercury facts" in system  # the web block uses the new numbers
    assert "[1] metals.pdf, page 4" in system
