"""A new chat's model-written title (titles.py): asked of a real OpenAI-wire server (tests/wire.py)
and written to a real SQLite store; only after the first exchange, never over a user's
rename, never a paragraph or markup."""

from __future__ import annotations

import time

import pytest

from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.chat import ChatService
from chatui.config import Settings
from chatui.chat import TurnResult
from chatui.history import History, title_from
from chatui.store import Store
from chatui.titles import clean_title, fits_chat, retitle_after_first_answer

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


@pytest.mark.parametrize("title,question,answer,ok", [
    # QA: the small model echoed the title instructions instead of naming the chat
    ("No, no quotes here", "Count from one to five.", "1, 2, 3, 4, 5", False),
    ("Counting to Five", "Count from one to five.", "1, 2, 3, 4, 5", True),
    ("Counting 1 to 5", "Count from one to five.", "1, 2, 3, 4, 5", True),  # the answer's words
    ("Counting practice", "Count from one to five.", "", True),  # a form of the same word
    ("Tidal rhythms", "how do tides work exactly", "", False),  # no word in common: refused
    ("Pirate Tales", "Tell me a story about pirates.", "", True),  # plural, case
    ("Stories of the Sea", "Tell me a story about pirates.", "", True),
    ("A Helpful Assistant", "Tell me a story about pirates.", "Arr, once a crew…", False),
    ("Summary of the chat", "Count from one to five.", "1 2 3 4 5", False),
    ("Five Title Ideas", "Count from one to five.", "1 2 3 4 5", False),  # shares "five", echoes
    ("Essay Title Tips", "How do I write a good title for my essay?", "", True),
    ("Conversation starter", "Hi", "Hello! How can I help?", False),
    ("The and of", "the and of", "", False),  # stop words only
    ("海盗故事", "讲一个海盗的故事", "", True),
])
def test_a_model_title_must_be_about_the_chat(title, question, answer, ok):
    assert fits_chat(title, question, answer) is ok


async def test_a_title_echoing_the_instructions_falls_back_to_the_first_words(world):
    service, store, wire = world
    wire.tokens, wire.token_text = 1, "No, no quotes here"
    first = "Count from one to five."
    conv = first_exchange(store, first)
    assert not await retitle_after_first_answer(service, store, U, conv, "wire")
    assert store.get_conversation(U, conv)["title"] == title_from(first)
    wire.token_text = "Counting from one to five"
    assert await retitle_after_first_answer(service, store, U, conv, "wire")
    c = store.get_conversation(U, conv)
    assert (c["title"], c["title_source"]) == ("Counting from one to five", "model")


async def test_an_edited_first_question_gets_a_new_model_title_after_its_answer(world):
    """The sidebar named the old question after the first question was edited, when the
    title was model-written: it follows the question on screen, then the model titles it."""
    service, store, wire = world
    history = History(store)
    wire.tokens, wire.token_text = 1, "Tides and the moon"
    t = history.start(U, None, "how do tides work exactly", "wire", "")
    history.finish(U, t, TurnResult(text="The moon pulls.", finish_reason="stop"), "wire",
                   "openai")
    conv = t.conversation_id
    assert await retitle_after_first_answer(service, store, U, conv, "wire")
    assert history.conversations(U) == [("Tides and the moon", conv)]

    edited = history.edit(U, conv, t.user_message_id, "why is the sea salty")
    assert history.conversations(U) == [(title_from("why is the sea salty"), conv)]
    wire.token_text = "Salty sea water"
    # not before the new question has its answer
    assert not await retitle_after_first_answer(service, store, U, conv, "wire")
    history.finish(U, edited, TurnResult(text="Rivers carry salt.", finish_reason="stop"),
                   "wire", "openai")
    assert await retitle_after_first_answer(service, store, U, conv, "wire")
    with Store(store.url) as reloaded:
        assert [c["title"] for c in reloaded.list_conversations(U)] == ["Salty sea water"]
    # a rename still wins over later edits
    history.rename(U, conv, "Mine")
    history.edit(U, conv, edited.user_message_id, "what is brine")
    assert history.conversations(U) == [("Mine", conv)]


@pytest.mark.slow
def test_api_chats_get_the_models_title_without_waiting_and_a_rename_wins(tmp_path):
    """`/chat` (gradio_client): the answer comes back before the title is asked for or
    written; the model's title lands a moment later; a rename made while the model is
    writing the title is kept."""
    from gradio_client import Client

    from tests.conftest import start_app, stop_process
    from tests.wire import APP_CONFIG, WireServer

    def titles(client, token):
        return {c["id"]: c["title"] for c in client.predict(token, api_name="/conversations")}

    def wait_for(predicate, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.1)
        return False

    with WireServer() as wire:
        cfg = wire.config
        # one slow token per request: the answer takes ~1.5 s, and so does the title after it
        cfg.tokens, cfg.token_text, cfg.delay = 1, "Harbour tides explained", 1.5
        proc, url = start_app(tmp_path, APP_CONFIG.format(url=wire.url),
                              extra_env={"CHATUI_AUTO_TITLES": "1"})
        try:
            client, token = Client(url, verbose=False), "api-title-" + "t" * 40
            first = "how do tides work in a small harbour"
            out = client.predict(first, "", "wire", "", 0.6, 0.9, 32, False, token,
                                 api_name="/chat")
            conv = out[-1]["conversation_id"]
            assert out[-1]["finish_reason"] == "stop"
            # the answer did not wait for the title: still the first words right after it
            assert titles(client, token)[conv] == title_from(first)
            assert wait_for(lambda: titles(client, token)[conv] == "Harbour tides explained")
            asked = [r["messages"][-1]["content"] for r in cfg.requests]
            assert asked[0] == first and "title" in asked[1].lower() and len(asked) == 2

            # a rename while the model writes the title wins over it
            second = "what makes a spring tide different"
            out = client.predict(second, "", "wire", "", 0.6, 0.9, 32, False, token,
                                 api_name="/chat")
            conv2 = out[-1]["conversation_id"]
            assert wait_for(lambda: len(cfg.requests) == 4)          # the title is asked
            assert client.predict(conv2, "Spring tides (mine)", token,
                                  api_name="/rename_conversation") == "renamed"
            time.sleep(cfg.delay + 1.5)                               # its answer is in
            assert titles(client, token) == {conv: "Harbour tides explained",
                                             conv2: "Spring tides (mine)"}
            # a later turn of an existing chat asks for no title
            client.predict("and neap tides?", conv2, "wire", "", 0.6, 0.9, 32, False, token,
                           api_name="/chat")
            time.sleep(0.5)
            assert len(cfg.requests) == 5
        finally:
            stop_process(proc)
