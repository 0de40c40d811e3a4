"""The backend conformance suite: what every backend must do, as reusable async checks.

Each check takes a ready `Backend` and raises AssertionError on a violation. Test modules
for each backend (llama.cpp in-process, llama.cpp server via openai/tgi, vLLM) call them.
"""

from __future__ import annotations

import asyncio
import time

from backends.base import ERROR, FINISH_REASONS, LENGTH, Backend, Delta, GenerationParams

PROMPT = [{"role": "user", "content": "Write a short story about a robot who learns to paint."}]


async def collect(backend: Backend, messages=PROMPT, **params) -> tuple[list[Delta], Delta]:
    p = backend.defaults.merged(**params)
    deltas = [d async for d in backend.stream(messages, p)]
    return deltas[:-1], deltas[-1]


async def check_streams_in_chunks(backend: Backend) -> str:
    texts, final = await collect(backend, max_new_tokens=48, temperature=0.2)
    assert final.is_final and final.finish_reason in FINISH_REASONS, final
    assert final.finish_reason != ERROR, final.error
    assert all(not d.is_final for d in texts)
    assert len([d for d in texts if d.text]) >= 3, f"only {len(texts)} chunks"
    text = "".join(d.text for d in texts)
    assert len(text.strip()) >= 10, repr(text)
    assert final.completion_tokens and final.completion_tokens >= 3
    return text


async def check_finish_length(backend: Backend) -> None:
    texts, final = await collect(backend, max_new_tokens=6)
    assert final.finish_reason == LENGTH, (final, "".join(d.text for d in texts))
    assert 1 <= len([d for d in texts if d.text]) <= 6


async def check_cancel_is_prompt(backend: Backend, max_close_s: float = 1.0,
                                 next_ttft_s: float = 5.0) -> None:
    """Closing the stream early (stop button) must end generation: close returns fast and
    the backend is free for the next request at once (a still-running generation would
    make the next request wait behind it)."""
    gen = backend.stream(PROMPT, backend.defaults.merged(max_new_tokens=1000))
    got = 0
    async for d in gen:
        if d.text:
            got += 1
        if got >= 3:
            break
    t = time.perf_counter()
    await gen.aclose()
    assert time.perf_counter() - t < max_close_s
    t = time.perf_counter()
    gen2 = backend.stream([{"role": "user", "content": "Say hi."}],
                          backend.defaults.merged(max_new_tokens=4))
    async for d in gen2:
        if d.text or d.is_final:
            break
    await gen2.aclose()
    assert time.perf_counter() - t < next_ttft_s, "the cancelled generation kept running"


async def check_concurrent_streams(backend: Backend, interleaved: bool = False) -> None:
    """Two chats at once both get an answer. With `interleaved`, both must really stream
    at the same time: each gets its first token before the other finishes."""
    async def one(q):
        first = None
        text = ""
        final = None
        async for d in backend.stream([{"role": "user", "content": q}],
                                      backend.defaults.merged(max_new_tokens=24)):
            if d.text:
                first = first or time.perf_counter()
                text += d.text
            if d.is_final:
                final = d
        return text, final, first, time.perf_counter()

    (a, fa, a_first, a_end), (b, fb, b_first, b_end) = await asyncio.gather(
        one("Name a fruit and describe it."), one("Name a color and describe it."))
    assert fa.finish_reason != ERROR and fb.finish_reason != ERROR, (fa.error, fb.error)
    assert a.strip() and b.strip()
    if interleaved:
        assert a_first < b_end and b_first < a_end, "the two answers were serialized"


async def check_error_message(backend: Backend, *needles: str) -> str:
    texts, final = await collect(backend, max_new_tokens=8)
    assert final.finish_reason == ERROR, final
    assert final.error and all(n.lower() in final.error.lower() for n in needles), final.error
    return final.error


def default_params() -> GenerationParams:
    return GenerationParams(temperature=0.6, top_p=0.9, max_new_tokens=48, repetition_penalty=1.2)
