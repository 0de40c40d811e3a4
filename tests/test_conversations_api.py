"""Issue 11 through gradio_client against `python app.py`: search, share, list, revoke, open
and continue a share — and that user B can neither find A's words nor share or revoke A's
conversation. The model is the OpenAI-wire fake server (tests/wire.py): these tests are about
the conversations, not the model's words."""

from __future__ import annotations

import pytest
from gradio_client import Client

from tests.conftest import start_app, stop_process
from tests.wire import APP_CONFIG as CONFIG, WireServer

pytestmark = pytest.mark.slow

A = "conv-api-a-" + "a" * 40
B = "conv-api-b-" + "b" * 40


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with WireServer() as wire:
        wire.config.tokens, wire.config.token_text = 6, "fine "
        proc, url = start_app(tmp_path_factory.mktemp("conv-api"), CONFIG.format(url=wire.url))
        try:
            yield Client(url, verbose=False)
        finally:
            stop_process(proc)


def text_of(msg) -> str:
    c = msg["content"]
    return "".join(p.get("text", "") for p in c) if isinstance(c, list) else (c or "")


def chat(client: Client, message: str, token: str, conversation_id: str = "") -> str:
    out = client.predict(message, conversation_id, "wire", "", 0.6, 0.9, 32, False, token,
                         api_name="/chat")
    return out[-1]["conversation_id"]


def test_search_finds_own_words_with_snippet_never_anothers(app):
    conv = chat(app, "How do I tune the flux capacitor?", A)
    chat(app, "Unrelated question about bread", A)
    found = app.predict("flux", A, api_name="/search_conversations")
    assert [r["id"] for r in found] == [conv]
    assert "flux capacitor" in found[0]["snippet"] and found[0]["title"]
    assert app.predict("flux", B, api_name="/search_conversations") == []
    assert app.predict("", A, api_name="/search_conversations") == []
    with pytest.raises(Exception, match="at most 500"):
        app.predict("x" * 501, A, api_name="/search_conversations")


def test_share_open_continue_revoke(app):
    conv = chat(app, "Explain tides in one line", A)
    sid = app.predict(conv, A, api_name="/share_conversation")
    chat(app, "A later question not in the link", A, conv)
    shared = app.predict(sid, api_name="/open_share")
    texts = [text_of(m) for m in shared["messages"]]
    assert texts[0] == "Explain tides in one line"
    assert not any("later question" in t for t in texts)
    assert any("fine" in t for t in texts[1:])
    assert A not in str(shared)
    # B copies it into his own history; A's conversation is untouched
    copy = app.predict(sid, B, api_name="/continue_share")
    assert copy != conv
    b_convs = [c["id"] for c in app.predict(B, api_name="/conversations")]
    assert copy in b_convs and conv not in b_convs
    opened = app.predict(copy, B, api_name="/open_conversation")
    assert text_of(opened[0]) == "Explain tides in one line"
    # list and revoke: owner only
    assert [s["id"] for s in app.predict(A, api_name="/list_shares")][0] == sid
    assert app.predict(B, api_name="/list_shares") == []
    with pytest.raises(Exception, match="not found"):
        app.predict(sid, B, api_name="/revoke_share")
    assert app.predict(sid, api_name="/open_share")["messages"]      # still there
    assert app.predict(sid, A, api_name="/revoke_share") == "revoked"
    with pytest.raises(Exception, match="not found"):
        app.predict(sid, api_name="/open_share")
    with pytest.raises(Exception, match="not found"):
        app.predict(sid, B, api_name="/continue_share")


def test_b_cannot_share_or_reopen_as_a(app):
    conv = chat(app, "A private matter about llamas", A)
    with pytest.raises(Exception, match="does not exist"):
        app.predict(conv, B, api_name="/share_conversation")
    with pytest.raises(Exception, match="does not exist"):
        app.predict(conv, B, api_name="/open_conversation")
    assert app.predict("llamas", B, api_name="/search_conversations") == []
    with pytest.raises(Exception, match="not found"):
        app.predict("definitely-not-a-real-share-id", api_name="/open_share")
