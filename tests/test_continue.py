"""Continue: more of an answer cut at the length limit, in the same assistant turn.

Seen in QA: the partial answer was sent back as a closed assistant turn followed by a user
"Continue…" message, so the model started a new answer and the two were glued together
("…treasure, and theThe maelstrom's fury was…"). The partial answer must end the prompt as
an open assistant turn, and the new text must join it as the model wrote it."""

from __future__ import annotations

import re

import pytest
from llama_cpp import Llama

from backends.base import GenerationParams
from backends.remote import CONTINUE_FIELDS, RemoteBackend, chatml
from chatui.chat import ChatService, TurnRequest, TurnResult
from chatui.config import Settings
from chatui.context import fit_messages
from chatui.history import History
from chatui.store import Store

QUESTION = "Tell me a story about pirates."
# Cut after a whole word: whatever comes next starts with a space or punctuation.
PARTIAL = "Once upon a time, a crew of pirates sailed the seven"


@pytest.fixture
def spy_prompts(monkeypatch):
    """The token prompts llama.cpp is asked to complete (chat completions included: the
    chat handler completes its rendered prompt through the same method)."""
    prompts: list = []
    original = Llama.create_completion

    def create_completion(self, prompt, *args, **kwargs):
        prompts.append(self.detokenize(prompt, special=True).decode()
                       if isinstance(prompt, list) else prompt)
        return original(self, prompt, *args, **kwargs)

    monkeypatch.setattr(Llama, "create_completion", create_completion)
    return prompts


async def test_llamacpp_continues_an_open_assistant_turn(llama_backend, spy_prompts):
    messages = [{"role": "user", "content": QUESTION},
                {"role": "assistant", "content": PARTIAL}]
    deltas = [d async for d in llama_backend.stream(
        messages, GenerationParams(max_new_tokens=8, temperature=0.6, seed=3))]
    assert deltas[-1].finish_reason in ("stop", "length")
    prompt = spy_prompts[-1]
    # The prompt is the template's, up to and including the partial answer, and no further:
    # no end-of-turn marker after it, no second assistant header.
    assert prompt.endswith("<|im_start|>assistant\n" + PARTIAL), prompt[-120:]
    assert prompt.count("<|im_start|>assistant") == 1
    assert QUESTION in prompt and "Continue" not in prompt
    tail = prompt[prompt.rindex("<|im_start|>assistant"):]
    assert "<|im_end|>" not in tail and "<|endoftext|>" not in tail
    assert llama_backend.continuation_prompt(messages)[0] == prompt
    # an ordinary turn still gets a fresh assistant turn
    assert "".join([d.text async for d in llama_backend.stream(
        messages[:1], GenerationParams(max_new_tokens=4, seed=3))])
    assert spy_prompts[-1].endswith("<|im_start|>assistant\n")


async def test_continue_through_the_service_joins_with_the_models_own_spacing(
        llama_backend, tmp_path):
    """End to end as the app runs it: ChatService with the real model, History on SQLite."""
    settings = Settings.model_validate({"models": [{"name": "smollm2", "type": "llamacpp"}]})
    service = ChatService(settings, {"smollm2": llama_backend})
    store = Store(tmp_path / "chat.db")
    history = History(store)
    user = "u-continue"
    turn = history.start(user, None, QUESTION, "smollm2", "")
    cut = history.finish(user, turn, TurnResult(text=PARTIAL, finish_reason="length"),
                         "smollm2", "llamacpp")

    turn, answer = history.continue_turn(user, turn.conversation_id, cut)
    result = TurnResult()
    req = TurnRequest(message=turn.message, history=turn.prompt_history, model="smollm2",
                      max_new_tokens=12, prefix=answer["content"])
    snaps = [s async for s in service.respond(req, result)]
    history.finish_continuation(user, answer, result)

    assert result.finish_reason in ("stop", "length") and result.text.strip()
    # The model goes on after "seven" (" seas…"), so the new text opens with the space the
    # model wrote: not a new answer glued on ("sevenOnce upon…", "sevenThe…").
    assert re.match(r"\s", result.text), repr(result.text)
    assert not result.text.strip().startswith(("Once upon", "The ")), repr(result.text)
    stored = history.store.get_message(user, cut)["content"]
    assert stored == PARTIAL + result.text and not re.search(r"seven[A-Za-z]", stored)
    assert snaps  # the chat was shown growing
    # one answer, continued in place
    assert [m["role"] for m in history.store.branch(user, turn.conversation_id)] == [
        "user", "assistant"]
    store.close()


def test_trimming_keeps_the_question_with_the_partial_answer():
    old = [{"role": "user", "content": "old " * 200}, {"role": "assistant", "content": "x " * 200}]
    question = {"role": "user", "content": "why " * 75}  # with the partial answer: 176 tokens
    messages = old + [question, {"role": "assistant", "content": PARTIAL}]
    fitted = fit_messages(messages, 300, 200, lambda ms: sum(len(m["content"]) // 2 for m in ms))
    # too long for the full answer budget: the answer shrinks, the question stays
    assert fitted.messages == messages[2:] and fitted.max_new_tokens == 300 - 176


def test_generate_route_prompt_leaves_the_answer_open():
    prompt = chatml([{"role": "user", "content": "q"},
                     {"role": "assistant", "content": "and the"}])
    assert prompt == "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\nand the"


async def test_openai_route_sends_the_partial_answer_as_an_open_final_message(wire_server):
    backend = RemoteBackend("wire", wire_server.url + "/v1",
                            defaults=GenerationParams(max_new_tokens=4))
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": PARTIAL}]
    text = "".join([d.text async for d in backend.stream(messages)])
    assert text == "tok " * 4
    sent = wire_server.config.requests[-1]
    assert sent["messages"][-1] == {"role": "assistant", "content": PARTIAL}
    assert sent["continue_final_message"] is True and sent["add_generation_prompt"] is False
    # an ordinary turn carries neither field
    [d async for d in backend.stream(messages[:1])]
    assert not set(CONTINUE_FIELDS) & set(wire_server.config.requests[-1])
    await backend.aclose()


async def test_a_server_refusing_the_continue_fields_gets_plain_messages(wire_server):
    wire_server.config.status = 400
    backend = RemoteBackend("wire", wire_server.url + "/v1",
                            defaults=GenerationParams(max_new_tokens=4))
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": PARTIAL}]
    deltas = [d async for d in backend.stream(messages)]
    assert deltas[-1].finish_reason == "error"
    first, second = wire_server.config.requests
    assert first["continue_final_message"] is True
    assert "continue_final_message" not in second and second["messages"] == first["messages"]
    await backend.aclose()


def test_vllm_renders_a_continuation_with_transformers_continue_final_message():
    """vLLM's prompt comes from the tokenizer's chat template (transformers): a final
    assistant message is rendered as an open turn, not followed by a new assistant header."""
    from types import SimpleNamespace

    from backends.vllm import VllmBackend

    calls: list[dict] = []

    def apply_chat_template(msgs, **kw):
        calls.append({"messages": msgs, **kw})
        return [1, 2, 3]

    backend = VllmBackend("v", "none", context_length=512)
    tok = SimpleNamespace(apply_chat_template=apply_chat_template)
    messages = [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": PARTIAL}]
    assert backend._encode(messages, tok) == [1, 2, 3]
    assert calls[-1]["continue_final_message"] is True
    assert calls[-1]["add_generation_prompt"] is False
    assert calls[-1]["messages"][-1] == {"role": "assistant", "content": PARTIAL}
    backend._encode(messages[:1], tok)
    assert calls[-1]["add_generation_prompt"] is True
    assert calls[-1]["continue_final_message"] is False
