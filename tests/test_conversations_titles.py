"""A new chat's model-written title (titles.py): asked of a real OpenAI-wire server (tests/wire.py)
and written to a real SQLite store; only after the first exchange, never over a user's
rename, never a paragraph or markup."""

from __future__ import annotations

import pytest

from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.chat import ChatService
from chatui.config import Settings
from chatui.history import title_from
from chatui.store import Store
from chatui.titles import clean_title, retitle_after_first_answer

U = "title-user"


@pytest.fixture
def world(wire_server, tmp_path):
    settings = Settings.model_validate({"models": [
        {"name": "wire", "type": "openai", "endpoint_url": wire_server.url + "/v1"}]})
    backend = RemoteBackend("wire", wire_server.url + "/v1",
                            defaults=GenerationParams(max_new_tokens=64))
    store = Store(tmp_path / "t.db")
    yield ChatService(settings, {"wire": backend}), store, wire_server.config
    store.close()


def first_exchange(store, text="how do tides work exactly and why twice a day"):
    conv = store.create_conversation(U, title_from(text), model="wire")
    store.add_message(U, conv, "user", text)
    store.add_message(U, conv, "assistant", "Because of the moon.", finish_reason="stop")
    return conv


@pytest.mark.parametrize("raw,want", [
    ("Ocean Tides Explained", "Ocean Tides Explained"),
    ('"Ocean Tides Explained."', "Ocean Tides Explained"),
    ("Title: Moon and tides\n\nMore text", "Moon and tides"),
    ("<think>hmm</think>Tides 101", "Tides 101"),
    ("", None),
    ("one two three four five six seven eight nine ten", None),
    ("x" * 80, None),
    ("<b>Bold</b> [link](x)", "bBold/b link(x)"),
])
def test_clean_title(raw, want):
    assert clean_title(raw) == want


async def test_first_answer_gets_the_models_title(world):
    service, store, wire = world
    wire.tokens, wire.token_text = 3, "Tides "
    conv = first_exchange(store)
    assert await retitle_after_first_answer(service, store, U, conv, "wire")
    assert store.get_conversation(U, conv)["title"] == "Tides Tides Tides"
    asked = wire.requests[-1]["messages"][-1]["content"]
    assert "how do tides work" in asked and "title" in asked.lower()
    # only once: the title is no longer the first words
    assert not await retitle_after_first_answer(service, store, U, conv, "wire")


async def test_a_renamed_chat_keeps_its_name_and_later_turns_do_nothing(world):
    service, store, wire = world
    wire.tokens, wire.token_text = 2, "Model "
    conv = first_exchange(store)
    store.rename_conversation(U, conv, "My own name")
    assert not await retitle_after_first_answer(service, store, U, conv, "wire")
    assert store.get_conversation(U, conv)["title"] == "My own name"
    other = first_exchange(store, "second chat")
    store.add_message(U, other, "user", "a follow-up")
    n = len(wire.requests)
    assert not await retitle_after_first_answer(service, store, U, other, "wire")
    assert len(wire.requests) == n                    # the model was not even asked


async def test_a_failing_or_rambling_model_leaves_the_first_words(world):
    service, store, wire = world
    conv = first_exchange(store)
    wire.status = 500
    assert not await retitle_after_first_answer(service, store, U, conv, "wire")
    wire.status, wire.tokens, wire.token_text = 200, 30, "word "
    assert not await retitle_after_first_answer(service, store, U, conv, "wire")
    assert store.get_conversation(U, conv)["title"] == title_from(
        "how do tides work exactly and why twice a day")
    assert not await retitle_after_first_answer(service, store, "someone-else", conv, "wire")
