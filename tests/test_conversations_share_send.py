"""A message sent on a shared page (`Sidebar.send`, the browser's send): it continues the shared
conversation in a copy in the sender's history, and a refused message leaves no copy behind.
Real SQLite store, the OpenAI-wire fake as the model (the Chromium side of it is in
test_conversations_browser.py)."""

from __future__ import annotations

import secrets

import gradio as gr
import pytest

from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.chat import ChatService
from chatui.config import Settings
from chatui.handlers import Handlers
from chatui.history import History
from chatui.sidebar import SHARE_NOT_FOUND, Sidebar
from chatui.store import Store

OWNER, VIEWER = secrets.token_urlsafe(32), secrets.token_urlsafe(32)


@pytest.fixture
def world(wire_server, tmp_path):
    def make(**limits):
        settings = Settings.model_validate({
            "models": [{"name": "wire", "type": "openai",
                        "endpoint_url": wire_server.url + "/v1", "context_length": 4096}],
            "limits": {"messages_per_minute": 100, **limits}})
        backend = RemoteBackend("wire", wire_server.url + "/v1", context_length=4096,
                                defaults=GenerationParams(max_new_tokens=16))
        h = Handlers(ChatService(settings, {"wire": backend}), History(store))
        owner = h.user(OWNER)
        conv = store.create_conversation(owner, "Pangolins", model="wire")
        store.add_message(owner, conv, "user", "What do pangolins eat?")
        store.add_message(owner, conv, "assistant", "Ants.", finish_reason="stop")
        return h, Sidebar(h), conv, store.share_conversation(owner, conv)

    wire_server.config.tokens, wire_server.config.token_text = 3, "termites "
    store = Store(tmp_path / "chat.db")
    yield make, store
    store.close()


async def send(sb, text, share_id, token=VIEWER):
    return [out async for out in sb.send(text, "wire", "", 0.7, 0.9, 16, False, token, None,
                                         share_id, request=None)]


async def test_a_send_on_a_shared_page_answers_in_the_senders_copy(world):
    make, store = world
    h, sb, conv, sid = make()
    outs = await send(sb, "And where do they live?", sid)
    chat, session, info, convs, share_box, share_state = outs[0]
    copy = session["conv"]
    assert copy != conv and info["conversation_id"] == copy
    assert convs.value == copy and share_box["visible"] is False and share_state is None
    assert all(o[4] == gr.skip() for o in outs[1:])                       # hidden once
    viewer = h.user(VIEWER)
    assert [c["id"] for c in store.list_conversations(viewer)] == [copy]
    branch = store.branch(viewer, copy)
    assert [m["content"] for m in branch] == ["What do pangolins eat?", "Ants.",
                                              "And where do they live?",
                                              "termites termites termites "]
    assert outs[-1][2]["finish_reason"] == "stop"
    # the owner's conversation and the link are as they were
    assert len(store.branch(h.user(OWNER), conv)) == 2
    assert len(store.get_share(sid)["messages"]) == 2
    # no share on screen: an ordinary send, a chat of its own
    outs = await send(sb, "Unrelated", None)
    assert outs[0][1]["conv"] not in (copy, conv) and outs[0][4] == gr.skip()


async def test_a_refused_send_leaves_no_copy_and_a_revoked_link_is_not_found(world):
    make, store = world
    h, sb, conv, sid = make(max_turns=2)       # the copy is full: its next message is refused
    with pytest.raises(gr.Error, match="reached 2 messages"):
        await send(sb, "One more?", sid)
    assert store.list_conversations(h.user(VIEWER)) == []
    store.revoke_share(h.user(OWNER), sid)
    with pytest.raises(gr.Error, match=SHARE_NOT_FOUND):
        await send(sb, "Hello?", sid)
    assert store.list_conversations(h.user(VIEWER)) == []
