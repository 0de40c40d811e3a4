"""backends/hub_stream.py: the cheaper chunk parse gives exactly what huggingface_hub's own
parser gives, for every chunk shape the servers we support send (vLLM, llama.cpp's server,
TGI's Messages API, OpenAI), and leaves the rest to huggingface_hub.

The chunks are written here as those servers document and send them (copied from their
streams' wire format); no server is needed to compare two parsers of one line."""

from __future__ import annotations

import json

import pytest
from huggingface_hub.inference import _common

from backends import hub_stream
from backends.hub_stream import fast_chunk, same

ORIGINAL = getattr(_common._format_chat_completion_stream_output, "original",
                   _common._format_chat_completion_stream_output)


def line(payload) -> str:
    return "data: " + json.dumps(payload)


def chunk(delta, finish=None, **extra):
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1733000000,
            "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                         "finish_reason": finish}], **extra}


PER_TOKEN = {  # what a server sends for each token: the fast path must take all of these
    "openai first": chunk({"role": "assistant", "content": ""}),
    "openai token": chunk({"content": " world"}, system_fingerprint="fp_1"),
    "vllm token": {**chunk({"content": "Hi"}), "choices": [
        {"index": 0, "delta": {"content": "Hi"}, "logprobs": None, "finish_reason": None,
         "stop_reason": None}]},
    "vllm reasoning": chunk({"reasoning_content": "Let me think", "content": None}),
    "llama.cpp reasoning": chunk({"reasoning_content": "hm"}),
    "tgi messages": chunk({"role": "assistant", "content": "x", "tool_calls": None},
                          system_fingerprint="3.3.0-native", usage=None),
    "finish": chunk({}, "stop"),
    "finish, no delta": {**chunk({}), "choices": [{"index": 0, "finish_reason": "length"}]},
    "delta null": chunk(None, "stop"),
    "llama.cpp timings": chunk({"content": "!"}, timings={"predicted_ms": 3.2}),
    "no choices": {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                   "choices": []},
    "unicode": chunk({"content": "né 日本 🙂"}),
}

UNUSUAL = {  # built by huggingface_hub's parser: the result must still be the same
    "usage": {**chunk({}), "choices": [], "usage": {"prompt_tokens": 5,
                                                    "completion_tokens": 7,
                                                    "total_tokens": 12}},
    "tool call": chunk({"tool_calls": [{"index": 0, "id": "t", "type": "function",
                                        "function": {"name": "f", "arguments": "{}"}}]}),
    "logprobs": {**chunk({"content": "a"}), "choices": [
        {"index": 0, "delta": {"content": "a"}, "finish_reason": None,
         "logprobs": {"content": [{"token": "a", "logprob": -0.1, "top_logprobs": []}]}}]},
    "odd key": chunk({"content": "a"}, **{"X-Trace": "1"}),
}


@pytest.mark.parametrize("name", sorted(PER_TOKEN))
def test_per_token_chunks_take_the_fast_path_and_match_huggingface_hub(name):
    text = line(PER_TOKEN[name])

    def fallback(_line):
        raise AssertionError("fell back to huggingface_hub's parser")

    got = fast_chunk(text, fallback)
    assert same(got, ORIGINAL(text)), (repr(got), repr(ORIGINAL(text)))
    # the attributes the remote backend reads
    want = ORIGINAL(text)
    for mine, theirs in zip(got.choices, want.choices):
        assert mine.finish_reason == theirs.finish_reason
        assert (mine.delta and mine.delta.content) == (theirs.delta and theirs.delta.content)
        assert getattr(mine.delta, "reasoning_content", None) == getattr(
            theirs.delta, "reasoning_content", None)


@pytest.mark.parametrize("name", sorted(UNUSUAL))
def test_other_chunks_are_left_to_huggingface_hub(name):
    text = line(UNUSUAL[name])
    calls = []

    def fallback(value):
        calls.append(value)
        return ORIGINAL(value)

    assert same(fast_chunk(text, fallback), ORIGINAL(text))
    assert calls == [text]


def test_done_blank_lines_and_errors_behave_as_in_huggingface_hub():
    parse = lambda value: fast_chunk(value, ORIGINAL)  # noqa: E731
    assert parse("") is None and parse(": keep-alive") is None
    with pytest.raises(StopIteration):
        parse("data: [DONE]")
    error = line({"error": "Input validation error: too long", "error_type": "validation"})
    with pytest.raises(Exception) as mine:
        parse(error)
    with pytest.raises(Exception) as theirs:
        ORIGINAL(error)
    assert type(mine.value) is type(theirs.value) and str(mine.value) == str(theirs.value)
    with pytest.raises(AttributeError):  # not a JSON object: both fail alike
        parse(line([chunk({"content": "a"})]))


def test_same_notices_every_difference():
    a = ORIGINAL(line(PER_TOKEN["openai token"]))
    b = ORIGINAL(line(PER_TOKEN["openai token"]))
    assert same(a, b)
    b.choices[0].delta.__dict__["content"] = "other"  # an attribute only, not the dict item
    assert not same(a, b)
    c = ORIGINAL(line(PER_TOKEN["openai token"]))
    dict.__setitem__(c, "extra", 1)  # a dict item only
    assert not same(a, c)


def test_installed_by_the_remote_backend_and_kept_out_when_it_would_differ(monkeypatch):
    import asyncio

    from backends.remote import RemoteBackend

    async def make_client():
        RemoteBackend("m", "http://127.0.0.1:9/v1", kind="openai")._client()

    asyncio.run(make_client())
    installed = _common._format_chat_completion_stream_output
    assert getattr(installed, "original", None) is ORIGINAL

    # A huggingface_hub whose types changed: the self-check fails, its own parser stays.
    monkeypatch.setattr(_common, "_format_chat_completion_stream_output", ORIGINAL)
    monkeypatch.setattr(hub_stream, "_installed", [])
    monkeypatch.setattr(hub_stream, "_make", lambda cls, names, data, nested: (
        dict(data), dict(data)))
    assert hub_stream.install() is False
    assert _common._format_chat_completion_stream_output is ORIGINAL
