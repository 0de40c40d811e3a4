"""Reasoning models: thinking split from the answer, in every backend, the turn, the store.

Backends get reasoning two ways (tests/wire.py documents the wire formats): inline tags at
the start of the text, split anywhere across chunks, or a separate delta field. Unit tests
cover the splitter at every split position; the wire fake streams both forms through the
real RemoteBackend; a scripted engine runs the in-process vLLM backend's own code path.
"""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pytest

from backends.base import Delta, GenerationParams
from backends.reasoning import ThinkSplitter, split_reasoning
from backends.registry import create_backend
from backends.remote import RemoteBackend
from backends.spec import ModelSpec
from chatui.chat import ChatService, TurnRequest, TurnResult
from chatui.config import Settings
from chatui.render import STOPPED_MARK, assistant_view

TEXT = "<think>Let me see: 2+2.</think>\n\nIt is 4."


def split_all(splitter: ThinkSplitter, pieces: list[str]) -> tuple[str, str]:
    reasoning, answer = "", ""
    for p in pieces:
        r, a = splitter.feed(p)
        reasoning, answer = reasoning + r, answer + a
    r, a = splitter.flush()
    return reasoning + r, answer + a


# -- the splitter ---------------------------------------------------------------------------

def test_every_split_into_two_and_three_pieces_gives_the_same_result():
    want = ("Let me see: 2+2.", "It is 4.")
    n = len(TEXT)
    for i in range(n + 1):
        assert split_all(ThinkSplitter(), [TEXT[:i], TEXT[i:]]) == want, i
        for j in range(i, n + 1):
            assert split_all(ThinkSplitter(), [TEXT[:i], TEXT[i:j], TEXT[j:]]) == want, (i, j)
    assert split_all(ThinkSplitter(), list(TEXT)) == want  # one character per chunk


def test_model_specific_tags_at_every_split_position():
    open_tag, close_tag = "<|begin_of_thought|>", "<|end_of_thought|>"
    text = f"{open_tag}hmm < | odd{close_tag}Answer <|end"
    for i in range(len(text) + 1):
        got = split_all(ThinkSplitter(open_tag, close_tag), [text[:i], text[i:]])
        assert got == ("hmm < | odd", "Answer <|end"), i


def test_text_is_released_as_soon_as_it_cannot_be_a_tag():
    s = ThinkSplitter()
    assert s.feed("<thi") == ("", "")  # could still be the tag: held back
    assert s.feed("nk>I wonder") == ("I wonder", "")  # reasoning streams at once
    assert s.feed(" more </th") == (" more ", "")  # a piece of the close tag is held
    assert s.feed("ink>Yes") == ("", "Yes")
    assert ThinkSplitter().feed("Hello") == ("", "Hello")  # no tag: not delayed at all


def test_no_tag_a_look_alike_and_a_tag_mid_answer_stay_answer():
    assert split_all(ThinkSplitter(), ["<thinking is fun>"]) == ("", "<thinking is fun>")
    assert split_all(ThinkSplitter(), ["<thi"]) == ("", "<thi")  # ended before deciding
    mid = "The tag <think>x</think> is used by R1."
    assert split_all(ThinkSplitter(), [mid[:9], mid[9:]]) == ("", mid)
    assert split_all(ThinkSplitter(), ["  \n Hi"]) == ("", "  \n Hi")


def test_unclosed_thinking_is_all_reasoning():
    assert split_all(ThinkSplitter(), ["<think>still going </thi"]) == ("still going </thi", "")


async def test_split_reasoning_keeps_a_separate_field_and_trims_the_gap():
    async def stream():
        yield Delta(reasoning="Thinking hard.")
        yield Delta(text="\n\n")
        yield Delta(text="The answer")
        yield Delta(finish_reason="stop")

    out = [d async for d in split_reasoning(stream(), ("<think>", "</think>"))]
    assert "".join(d.reasoning for d in out) == "Thinking hard."
    assert "".join(d.text for d in out) == "The answer"
    assert out[-1].finish_reason == "stop"


# -- backends: the wire fake through the real RemoteBackend ---------------------------------

def remote(url: str, **kw) -> RemoteBackend:
    return RemoteBackend("wire", url + "/v1", defaults=GenerationParams(max_new_tokens=64), **kw)


async def collect(backend, max_new_tokens=64) -> tuple[str, str, list[Delta]]:
    deltas = [d async for d in backend.stream([{"role": "user", "content": "2+2?"}],
                                              GenerationParams(max_new_tokens=max_new_tokens))]
    await backend.aclose()
    return ("".join(d.reasoning for d in deltas), "".join(d.text for d in deltas), deltas)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_remote_reads_the_separate_reasoning_field(wire_server, field):
    wire_server.config.script = [{field: "Two plus "}, {field: "two."},
                                 {"content": "\n\nIt is "}, {"content": "4."}]
    reasoning, answer, deltas = await collect(remote(wire_server.url))
    assert (reasoning, answer) == ("Two plus two.", "It is 4.")
    assert deltas[0].reasoning and not deltas[0].text  # thoughts first, on their own
    assert deltas[-1].finish_reason == "stop"


async def test_remote_splits_inline_tags_cut_across_chunks(wire_server):
    wire_server.config.script = [{"content": c} for c in
                                 ["<th", "ink>Let me", " see: 2+2.</", "think>", "\n\nIt is 4."]]
    reasoning, answer, _ = await collect(remote(wire_server.url))
    assert (reasoning, answer) == ("Let me see: 2+2.", "It is 4.")


async def test_spec_tags_are_used_and_null_turns_parsing_off(wire_server):
    wire_server.config.script = [{"content": "[[R]]plan"}, {"content": "[[/R]]Done."}]
    spec = ModelSpec(name="w", type="openai", endpoint_url=wire_server.url + "/v1",
                     reasoning_tags=["[[R]]", "[[/R]]"])
    assert (await collect(create_backend(spec)))[:2] == ("plan", "Done.")
    wire_server.config.script = [{"content": "<think>x</think>y"}]
    raw = create_backend(ModelSpec(name="w", type="openai", reasoning_tags=None,
                                   endpoint_url=wire_server.url + "/v1"))
    assert (await collect(raw))[:2] == ("", "<think>x</think>y")
    with pytest.raises(ValueError, match="two non-empty tags"):
        ModelSpec(name="w", type="openai", endpoint_url="http://x", reasoning_tags=["<t>"])


async def test_thinking_until_the_limit_ends_with_length_and_no_answer(wire_server):
    wire_server.config.script = [{"content": "<think>"}] + [{"content": "hmm "}] * 30
    reasoning, answer, deltas = await collect(remote(wire_server.url), max_new_tokens=8)
    assert answer == "" and reasoning == "hmm " * 7
    assert deltas[-1].finish_reason == "length"


# -- the in-process vLLM backend's own path, on a scripted engine (no vllm needed) ------------

class _ScriptedEngine:
    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    async def generate(self, prompt, sampling, request_id):
        for i, text in enumerate(self.pieces):
            last = i == len(self.pieces) - 1
            yield SimpleNamespace(finished=last, outputs=[SimpleNamespace(
                text=text, token_ids=[i], finish_reason="stop" if last else None)])

    async def abort(self, request_id):
        pass


async def test_vllm_backend_parses_inline_tags_the_same_way(monkeypatch):
    from backends import vllm as vllm_backend

    class _Err(Exception):
        pass

    api = SimpleNamespace(TokensPrompt=lambda **kw: kw, SamplingParams=lambda **kw: kw,
                          RequestOutputKind=SimpleNamespace(DELTA="delta"),
                          EngineDeadError=_Err, VLLMClientError=_Err)
    monkeypatch.setattr(vllm_backend, "_api", lambda: api)
    engine = _ScriptedEngine(["<thi", "nk>Let me", " see: 2+2.</th", "ink>\n\nIt is", " 4."])

    class Scripted(vllm_backend.VllmBackend):
        async def engine(self):
            return engine

    backend = Scripted("v", "none", context_length=512)
    backend._tokenizer = SimpleNamespace(
        apply_chat_template=lambda msgs, **kw: [1, 2, 3])
    deltas = [d async for d in backend.stream([{"role": "user", "content": "2+2?"}],
                                              GenerationParams(max_new_tokens=32))]
    assert "".join(d.reasoning for d in deltas) == "Let me see: 2+2."
    assert "".join(d.text for d in deltas) == "It is 4."
    assert deltas[-1].finish_reason == "stop" and deltas[-1].completion_tokens == 5


# -- the turn: Thinking step first, folded when the answer starts ---------------------------

def service(url: str) -> ChatService:
    settings = Settings.model_validate({"models": [
        {"name": "wire", "type": "openai", "endpoint_url": url + "/v1"}]})
    return ChatService(settings, {"wire": remote(url)})


def thinking_of(snapshot: list[dict]) -> list[dict]:
    return [m for m in snapshot
            if (m.get("metadata") or {}).get("title", "").startswith("Thinking")]


async def test_turn_shows_thinking_open_then_folded_with_its_duration(wire_server):
    wire_server.config.delay = 0.02
    wire_server.config.script = ([{"reasoning_content": f"step {i}. "} for i in range(5)]
                                 + [{"content": "It is 4."}])
    result = TurnResult()
    snaps = [s async for s in service(wire_server.url).respond(
        TurnRequest(message="2+2?", history=[], model="wire"), result)]
    first = snaps[0]
    assert len(first) == 1 and first[0]["metadata"] == {"title": "Thinking",
                                                        "status": "pending"}
    growing = [thinking_of(s)[0]["content"] for s in snaps if thinking_of(s)]
    assert growing[0] == "step 0. " and growing[-1] == "".join(f"step {i}. " for i in range(5))
    answer_snaps = [s for s in snaps if any(m["content"] == "It is 4." for m in s)]
    for snap in answer_snaps:  # once the answer shows, the step is folded, above it
        step = thinking_of(snap)
        assert step and step[0]["metadata"]["status"] == "done"
        assert snap.index(step[0]) < [m["content"] for m in snap].index("It is 4.")
        assert step[0]["metadata"]["duration"] >= 0.05
    assert result.text == "It is 4." and "step 4" in result.reasoning
    assert result.reasoning_duration >= 0.05


async def test_stop_while_thinking_keeps_the_thoughts_marked_stopped(wire_server):
    wire_server.config.delay = 0.05
    wire_server.config.script = [{"reasoning_content": f"idea {i}. "} for i in range(200)]
    result = TurnResult()
    gen = service(wire_server.url).respond(TurnRequest(message="hard?", history=[],
                                                       model="wire"), result)
    async for snap in gen:
        if thinking_of(snap) and "idea 2." in thinking_of(snap)[0]["content"]:
            break
    await gen.aclose()  # the stop button
    assert result.finish_reason == "stopped" and result.text == ""
    assert "idea 2." in result.reasoning and result.reasoning_duration > 0
    view = assistant_view(result.text, result.finish_reason, reasoning=result.reasoning,
                          reasoning_duration=result.reasoning_duration)
    assert thinking_of(view)[0]["metadata"]["title"] == "Thinking (stopped)"
    assert view[-1]["content"] == STOPPED_MARK


async def test_thinking_until_max_new_tokens_says_so(wire_server):
    wire_server.config.script = [{"reasoning_content": "hmm "}] * 50
    result = TurnResult()
    snaps = [s async for s in service(wire_server.url).respond(
        TurnRequest(message="?", history=[], model="wire", max_new_tokens=20), result)]
    assert result.finish_reason == "length" and result.text == ""
    assert snaps[-1][-1]["content"] == ("*(The model used all 20 tokens thinking and wrote "
                                        "no answer: raise Max new tokens.)*")
    assert thinking_of(snaps[-1])[0]["metadata"]["status"] == "done"


# -- the store: apart from the answer, shown again, never sent back --------------------------

def test_history_stores_reasoning_in_meta_and_never_prompts_with_it(tmp_path):
    from chatui.history import History, _prompt
    from chatui.store import Store

    store = Store(str(tmp_path / "chat.db"))
    history = History(store)
    turn = history.start("u1", None, "2+2?", "wire", "")
    result = TurnResult(text="It is 4.", finish_reason="stop", reasoning="Two plus two.",
                        reasoning_duration=1.25, params={"max_new_tokens": 64})
    msg_id = history.finish("u1", turn, result, "wire", "openai")
    stored = store.get_message("u1", msg_id)
    assert stored["content"] == "It is 4."
    assert stored["meta"]["reasoning"] == "Two plus two."
    assert stored["meta"]["reasoning_duration"] == 1.25
    shown, ids, _ = history.load("u1", turn.conversation_id)
    step = thinking_of(shown)[0]
    assert step["content"] == "Two plus two." and step["metadata"]["duration"] == 1.25
    assert shown.index(step) < [m["content"] for m in shown].index("It is 4.")
    assert set(ids) == {turn.user_message_id, msg_id}  # votes on the step rate the answer
    prompt = _prompt(store.branch("u1", turn.conversation_id))
    assert prompt == [{"role": "user", "content": "2+2?"},
                      {"role": "assistant", "content": "It is 4."}]
    store.close()
