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


async def test_vllm_backend_restores_an_open_tag_the_chat_template_wrote(monkeypatch):
    """DeepSeek-R1-style templates end the prompt with "<think>\\n": the model then writes
    only "…</think>answer", and the thoughts must still not land in the answer."""
    from backends import vllm as vllm_backend

    class _Err(Exception):
        pass

    api = SimpleNamespace(TokensPrompt=lambda **kw: kw, SamplingParams=lambda **kw: kw,
                          RequestOutputKind=SimpleNamespace(DELTA="delta"),
                          EngineDeadError=_Err, VLLMClientError=_Err)
    monkeypatch.setattr(vllm_backend, "_api", lambda: api)

    def run(prompt_tail: str, pieces: list[str]):
        engine = _ScriptedEngine(pieces)

        class Scripted(vllm_backend.VllmBackend):
            async def engine(self):
                return engine

        backend = Scripted("v", "none", context_length=512)
        backend._tokenizer = SimpleNamespace(apply_chat_template=lambda msgs, **kw: [1, 2],
                                             decode=lambda ids: prompt_tail)
        return backend.stream([{"role": "user", "content": "2+2?"}],
                              GenerationParams(max_new_tokens=32))

    deltas = [d async for d in run("<|Assistant|><think>\n", ["Two and", " two.</th",
                                                                "ink>\n\nFour."])]
    assert "".join(d.reasoning for d in deltas) == "Two and two."
    assert "".join(d.text for d in deltas) == "Four."
    plain = [d async for d in run("<|im_start|>assistant\n", ["Four."])]
    assert "".join(d.text for d in plain) == "Four." and not any(d.reasoning for d in plain)


async def test_llamacpp_backend_reads_a_reasoning_field_and_inline_tags():
    """The embedded backend's own loop, on scripted chunks in llama-cpp-python's dict form."""
    from backends.llamacpp import LlamaCppBackend

    chunks = [{"delta": {"reasoning_content": "Field thought. "}}, {"delta": {"content": "<thi"}},
              {"delta": {"content": "nk>Tag thought.</think>"}}, {"delta": {"content": "Hi!"}},
              {"delta": {}, "finish_reason": "stop"}]

    class Scripted:
        def create_chat_completion(self, **kw):
            return ({"choices": [c]} for c in chunks)

    backend = LlamaCppBackend("l", "none.gguf", context_length=512)
    backend._acquire = lambda cancel: Scripted()
    backend._release = lambda llm: None
    deltas = [d async for d in backend.stream([{"role": "user", "content": "hi"}],
                                              GenerationParams(max_new_tokens=16))]
    # A reasoning field first means the text is answer; here the text also carries tags, and
    # both forms end up in `reasoning`, the answer alone in `text`.
    assert "".join(d.reasoning for d in deltas) == "Field thought. Tag thought."
    assert "".join(d.text for d in deltas) == "Hi!"
    assert deltas[-1].finish_reason == "stop"


def test_citations_link_the_answer_and_leave_the_thoughts_alone():
    sources = [{"index": 1, "url": "https://example.org/a", "title": "A"}]
    view = assistant_view("It is 4 [1].", "stop", sources=sources,
                          reasoning="Source [1] says 4.", reasoning_duration=1.0)
    assert thinking_of(view)[0]["content"] == "Source [1] says 4."
    answer = next(m for m in view if m["content"].startswith("It is 4"))
    assert "https://example.org/a" in answer["content"]


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


# -- exports: the answer alone by default, reasoning on request ------------------------------

def _export(db: str, *args: str) -> list[dict]:
    import json
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-m", "chatui", "export", "--db", db, "--out", "-",
                           *args], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_exports_leave_reasoning_out_unless_asked(tmp_path):
    from chatui.history import History
    from chatui.store import Store

    db = str(tmp_path / "chat.db")
    store = Store(db)
    history = History(store)
    turn = history.start("u1", None, "2+2?", "wire", "")
    good = history.finish("u1", turn, TurnResult(text="It is 4.", finish_reason="stop",
                                                 reasoning="Two and two.",
                                                 reasoning_duration=0.5), "wire", "openai")
    retry = history.retry("u1", turn.conversation_id, turn.user_message_id)
    bad = history.finish("u1", retry, TurnResult(text="Five.", finish_reason="stop",
                                                 reasoning="Guess."), "wire", "openai")
    turn2 = history.start("u1", turn.conversation_id, "And 3+3?", "wire", "")
    history.finish("u1", turn2, TurnResult(text="6.", finish_reason="stop"), "wire", "openai")
    history.rate("u1", good, True)
    history.rate("u1", bad, False)
    store.close()

    plain = _export(db, "--format", "kto")
    assert [r["completion"][0]["content"] for r in plain] == ["It is 4.", "Five."]
    assert "Two and two" not in str(plain) and "Guess" not in str(plain)
    kto = _export(db, "--format", "kto", "--with-reasoning")
    assert [r["completion"][0]["content"] for r in kto] == [
        "<think>Two and two.</think>\n\nIt is 4.", "<think>Guess.</think>\n\nFive."]
    assert [r["label"] for r in kto] == [True, False]  # the votes are the answers' votes
    dpo = _export(db, "--format", "dpo", "--with-reasoning")
    assert dpo[0]["chosen"][0]["content"].startswith("<think>Two and two.</think>")
    assert _export(db, "--format", "dpo")[0]["chosen"][0]["content"] == "It is 4."
    conv = _export(db, "--format", "conversations")[0]["messages"]
    assert all("reasoning" not in m for m in conv) and "Guess" not in str(conv)
    conv = _export(db, "--format", "conversations", "--with-reasoning")[0]["messages"]
    answers = {m["content"]: m for m in conv if m["role"] == "assistant"}
    assert answers["It is 4."]["reasoning"] == "Two and two."
    assert answers["It is 4."]["reasoning_duration"] == 0.5
    assert answers["6."]["reasoning"] == "" and "reasoning" not in conv[0]
    # The later question's prompt holds the answer only, never its thoughts.
    assert all("<think>" not in str(m.get("content")) for m in conv)


# -- the real app through gradio_client ------------------------------------------------------

TOKEN = "think-" + "t" * 40


@pytest.fixture(scope="module")
def thinking_app(tmp_path_factory):
    """`python app.py` over the wire fake, which each test scripts as a reasoning model."""
    from tests.conftest import start_app, stop_process
    from tests.wire import WireServer

    tmp = tmp_path_factory.mktemp("thinking")
    with WireServer() as upstream:
        proc, url = start_app(tmp, f"""
models:
  - {{name: wire, type: openai, endpoint_url: "{upstream.url}/v1", context_length: 8192}}
storage: {{db_path: "{{db}}"}}
""")
        try:
            yield SimpleNamespace(url=url, upstream=upstream, db=str(tmp / "chat.db"))
        finally:
            stop_process(proc)


def text_of(msg: dict) -> str:
    c = msg["content"]
    return "".join(p.get("text", "") for p in c) if isinstance(c, list) else (c or "")


def submit(app, message: str, conversation_id: str = "", max_new_tokens: int = 512):
    from gradio_client import Client

    client = Client(app.url, verbose=False)
    job = client.submit(message, conversation_id, "wire", "", 0.7, 0.9, max_new_tokens, False,
                        TOKEN, api_name="/chat")
    return client, job


def stored_answer(app, user_message_id: str, timeout: float = 30.0) -> dict:
    import json
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(app.db) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT content, finish_reason, meta FROM messages WHERE "
                             "parent_id = ? AND role = 'assistant' AND finish_reason IS NOT "
                             "NULL", [user_message_id]).fetchone()
        if row:
            return {**dict(row), "meta": json.loads(row["meta"] or "{}")}
        time.sleep(0.1)
    raise AssertionError("the answer was never stored")


@pytest.mark.slow
def test_app_thinking_block_first_folded_stored_apart_reopened_never_sent_back(thinking_app):
    app = thinking_app
    app.upstream.config.delay = 0.1
    app.upstream.config.script = ([{"reasoning_content": f"thought {i}. "} for i in range(6)]
                                  + [{"content": "\n\nThe answer "}, {"content": "is 4."}])
    client, job = submit(app, "What is 2+2?")
    snaps = [out[0] for out in job]
    final, info = job.outputs()[-1][0], job.outputs()[-1][-1]
    thinking_snaps = [s for s in snaps if thinking_of(s)]
    first = thinking_snaps[0]
    assert thinking_of(first)[0]["metadata"]["status"] == "pending"
    assert first[-1] is thinking_of(first)[0]  # nothing below it yet: no answer
    with_answer = [s for s in snaps if any("The answer" in text_of(m) for m in s)]
    assert with_answer, "the answer never streamed"
    for snap in with_answer:
        step = thinking_of(snap)[0]
        assert step["metadata"]["status"] == "done" and step["metadata"]["duration"] >= 0.3
        answer = next(m for m in snap if "The answer" in text_of(m))
        assert snap.index(step) < snap.index(answer)
    assert text_of(thinking_of(final)[0]).startswith("thought 0. ")

    stored = stored_answer(app, info["user_message_id"])
    assert stored["content"] == "The answer is 4." and stored["finish_reason"] == "stop"
    assert stored["meta"]["reasoning"] == "".join(f"thought {i}. " for i in range(6))
    assert stored["meta"]["reasoning_duration"] >= 0.3

    reopened = client.predict(info["conversation_id"], TOKEN, api_name="/open_conversation")
    step = thinking_of(reopened)[0]
    assert "thought 5." in text_of(step) and step["metadata"]["status"] == "done"
    assert any(text_of(m) == "The answer is 4." for m in reopened[reopened.index(step):])

    app.upstream.config.delay = 0.0
    app.upstream.config.script = [{"content": "Six."}]
    _, job2 = submit(app, "And 3+3?", info["conversation_id"])
    list(job2)
    sent = app.upstream.config.requests[-1]["messages"]
    assert {"role": "assistant", "content": "The answer is 4."} in sent
    assert "thought" not in str(sent)


@pytest.mark.slow
def test_app_a_cancelled_job_thinks_and_answers_to_its_end(thinking_app):
    """A closed tab (a cancelled job) does not end the answer: the thoughts and the answer
    are written to their end and stored. (Stopped while thinking: the thoughts are kept,
    marked stopped: test_stop_while_thinking_keeps_the_thoughts_marked_stopped.)"""
    import time

    app = thinking_app
    app.upstream.config.delay = 0.05
    app.upstream.config.script = ([{"reasoning_content": f"idea {i}. "} for i in range(60)]
                                  + [{"content": "Done."}])
    client, job = submit(app, "Something hard")
    deadline, info = time.monotonic() + 60, None
    while time.monotonic() < deadline and info is None:
        outs = job.outputs()
        if outs and thinking_of(outs[-1][0]) and "idea 3." in text_of(
                thinking_of(outs[-1][0])[0]):
            info = outs[-1][-1]
        time.sleep(0.05)
    assert info, "no thinking streamed"
    job.cancel()
    stored = stored_answer(app, info["user_message_id"])
    assert stored["finish_reason"] == "stop" and stored["content"] == "Done."
    assert "idea 59." in stored["meta"]["reasoning"]
    reopened = client.predict(info["conversation_id"], TOKEN, api_name="/open_conversation")
    step = thinking_of(reopened)[0]
    assert "stopped" not in step["metadata"]["title"] and "idea 59." in text_of(step)
    assert text_of(reopened[-1]) == "Done."


@pytest.mark.slow
def test_app_thinking_until_the_token_limit_says_so(thinking_app):
    app = thinking_app
    app.upstream.config.delay = 0.0
    app.upstream.config.script = [{"content": "<think>"}] + [{"content": "hmm "}] * 100
    _, job = submit(app, "Think forever", max_new_tokens=16)
    list(job)
    final = job.outputs()[-1][0]
    assert text_of(final[-1]) == ("*(The model used all 16 tokens thinking and wrote no "
                                  "answer: raise Max new tokens.)*")
    assert text_of(thinking_of(final)[0]) == "hmm " * 15


# -- what a person sees, in real Chromium ----------------------------------------------------

BOTS_JS = "() => [...document.querySelectorAll('[data-testid=\"bot\"]')].map(b => b.innerText)"


@pytest.mark.slow
@pytest.mark.browser
def test_browser_shows_a_thinking_block_above_the_answer_folded_when_it_starts(
        thinking_app, browser):
    app = thinking_app
    app.upstream.config.delay = 0.15
    app.upstream.config.script = ([{"reasoning_content": f"musing {i}. "} for i in range(16)]
                                  + [{"content": "Forty-two "}, {"content": "it is."}])
    page = browser.new_context(viewport={"width": 1440, "height": 900}).new_page()
    page.goto(app.url)
    page.wait_for_selector("#input textarea", timeout=30_000)
    page.fill("#input textarea", "What is the answer?")
    page.keyboard.press("Enter")
    # While it thinks: a "Thinking" block whose thoughts stream in, and no answer yet.
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"bot\"]')]"
        ".some(b => b.innerText.includes('Thinking'))", timeout=30_000)
    early = page.evaluate(BOTS_JS)
    assert not any("Forty-two" in t for t in early), early
    page.wait_for_selector("#input .submit-button", timeout=60_000)
    bots = page.evaluate(BOTS_JS)
    think = next(i for i, t in enumerate(bots) if "Thinking" in t)
    answer = next(i for i, t in enumerate(bots) if "Forty-two it is." in t)
    assert think < answer, bots  # above the answer
    assert "musing 15." not in bots[think], bots[think]  # folded once the answer started
    page.get_by_text("Thinking", exact=False).first.click()
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-testid=\"bot\"]')]"
        ".some(b => b.innerText.includes('musing 15.'))", timeout=10_000)
    page.context.close()
