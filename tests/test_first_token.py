"""The path from a sent message to the model's first token (chatui/handlers.py `chat`):
what it waits for from the store, with a real SQLite store and a wire-format upstream.

When many users send at once, every store transaction and every trip through the event
loop's thread pool is a queue the first token waits in (bench/bench_scale.py, README
"Benchmarks"). A new message is one transaction and one trip: the limits, the conversation,
the message, its answer begun and an answers-at-once lease together (Store.begin_turn)."""

from __future__ import annotations

import asyncio
import secrets

import gradio as gr
import pytest

from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.chat import ChatService
from chatui.config import Settings
from chatui.handlers import Handlers
from chatui.history import History
from chatui.store import Store

TOKEN = secrets.token_urlsafe(32)


def handlers(url: str, store: Store, **limits) -> Handlers:
    settings = Settings.model_validate({
        "models": [{"name": "wire", "type": "openai", "endpoint_url": url + "/v1",
                    "context_length": 4096}],
        "limits": {"messages_per_minute": 100, "max_concurrent_per_user": 2, **limits}})
    backend = RemoteBackend("wire", url + "/v1", context_length=4096,
                            defaults=GenerationParams(max_new_tokens=16))
    return Handlers(ChatService(settings, {"wire": backend}), History(store))


def answer_text(out) -> str:
    chat = out[0]
    return "".join(str(m.get("content")) for m in chat if m.get("role") == "assistant")


class Counted:
    """Store write transactions and worker-thread trips, as the handler makes them."""

    def __init__(self, store: Store, monkeypatch):
        self.writes = self.trips = 0
        write, to_thread = store._write, asyncio.to_thread

        def counted_write(*a, **kw):
            self.writes += 1
            return write(*a, **kw)

        async def counted_to_thread(*a, **kw):
            self.trips += 1
            return await to_thread(*a, **kw)

        monkeypatch.setattr(store, "_write", counted_write)
        monkeypatch.setattr(asyncio, "to_thread", counted_to_thread)


async def test_a_new_message_waits_for_one_store_transaction_before_its_first_token(
        wire_server, tmp_path, monkeypatch):
    wire_server.config.tokens, wire_server.config.delay = 8, 0.01
    store = Store(tmp_path / "chat.db")
    h = handlers(wire_server.url, store)
    counted = Counted(store, monkeypatch)
    seen = None
    outputs = h.chat("Hello", "", "wire", "", 0.7, 0.9, 16, False, TOKEN, None, request=None)
    async for out in outputs:
        if "tok" in answer_text(out):
            seen = (counted.writes, counted.trips, len(wire_server.config.requests))
            break
    await outputs.aclose()
    assert seen == (1, 1, 1), "(store writes, thread trips, model requests) at the first token"
    await h.settle()                               # the answer outlives the closed event
    # what the one transaction stored: the message, its answer being written, a count
    branch = store.branch(h.user(TOKEN), out[2]["conversation_id"])
    assert [m["role"] for m in branch] == ["user", "assistant"]
    store.close()


async def test_a_tab_closed_at_the_first_update_still_gets_its_answer_then_the_slot_back(
        wire_server, tmp_path):
    wire_server.config.tokens, wire_server.config.delay = 50, 0.05
    store = Store(tmp_path / "chat.db")
    h = handlers(wire_server.url, store, max_concurrent_per_user=1)
    user = h.user(TOKEN)
    outputs = h.chat("Hello", "", "wire", "", 0.7, 0.9, 16, False, TOKEN, None, request=None)
    first = await outputs.__anext__()              # the user's message, no answer yet
    assert answer_text(first) == "" and store.active_generations(user) == 1
    await outputs.aclose()                         # Gradio closes the generator (tab gone)
    await asyncio.sleep(0.3)
    assert store.active_generations(user) == 1     # the answer is still being written
    await h.settle()
    assert store.active_generations(user) == 0     # written to its end, then the slot back
    conv = first[2]["conversation_id"]
    last = store.branch(user, conv)[-1]
    assert last["finish_reason"] == "length" and last["content"].count("tok") == 16
    # and the slot is free: the next message is accepted
    again = h.chat("Again", "", "wire", "", 0.7, 0.9, 16, False, TOKEN, None, request=None)
    await again.__anext__()
    await again.aclose()
    await h.settle()
    store.close()


async def test_limits_refuse_a_new_message_with_their_sentence_and_store_nothing(
        wire_server, tmp_path):
    wire_server.config.tokens = 4
    store = Store(tmp_path / "chat.db")
    h = handlers(wire_server.url, store, messages_per_minute=1, max_turns=2)
    user = h.user(TOKEN)
    outs = [o async for o in h.chat("one", "", "wire", "", 0.7, 0.9, 16, False, TOKEN, None,
                                     request=None)]
    conv = outs[-1][2]["conversation_id"]
    with pytest.raises(gr.Error, match=r"has reached 2 messages"):      # checked first
        [o async for o in h.chat("two", conv, "wire", "", 0.7, 0.9, 16, False, TOKEN, None,
                                 request=None)]
    with pytest.raises(gr.Error, match=r"too fast \(limit: 1 per minute\)\. Try again in"):
        [o async for o in h.chat("two", "", "wire", "", 0.7, 0.9, 16, False, TOKEN, None,
                                 request=None)]
    with pytest.raises(gr.Error, match="does not exist"):
        [o async for o in h.chat("two", "0" * 32, "wire", "", 0.7, 0.9, 16, False, TOKEN,
                                 None, request=None)]
    assert len(store.list_conversations(user)) == 1 and len(store.branch(user, conv)) == 2
    assert store.active_generations(user) == 0
    store.close()
