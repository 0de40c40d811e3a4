"""Conformance of the embedded llama.cpp backend (real model: bundled SmolLM2-135M GGUF)."""

import asyncio

import pytest

from backends.llamacpp import LlamaCppBackend, bundled_gguf, resolve_model_path
from backends.spec import ModelSpec
from tests import conformance as c

pytestmark = pytest.mark.slow


async def test_streams_in_chunks(llama_backend):
    await c.check_streams_in_chunks(llama_backend)


async def test_finish_length(llama_backend):
    await c.check_finish_length(llama_backend)


async def test_cancel_is_prompt(llama_backend):
    await c.check_cancel_is_prompt(llama_backend, max_close_s=0.5, next_ttft_s=2.0)


async def test_two_chats_stream_at_the_same_time(llama_backend):
    assert llama_backend.parallel >= 2
    await c.check_concurrent_streams(llama_backend, interleaved=True)


async def test_pool_never_exceeds_parallel(gguf_path):
    backend = LlamaCppBackend("pool", gguf_path, context_length=512, parallel=1)
    try:
        await c.check_concurrent_streams(backend)  # queued, not lost
        for _ in range(100):  # the worker returns its context just after the final delta
            if backend._free:
                break
            await asyncio.sleep(0.01)
        assert backend._created == 1 and len(backend._free) == 1
    finally:
        await backend.aclose()


async def test_prompt_larger_than_context_is_a_clear_error(gguf_path):
    small = LlamaCppBackend("tiny-ctx", gguf_path, context_length=256)
    try:
        msg = [{"role": "user", "content": "word " * 600}]
        texts, final = await c.collect(small, msg, max_new_tokens=8)
        assert final.finish_reason == "error"
        assert "does not fit" in final.error and "256" in final.error
        assert texts == []
    finally:
        await small.aclose()


def test_bundled_model_resolution():
    path = bundled_gguf()
    assert path.suffix == ".gguf" and path.stat().st_size > 50_000_000
    spec = ModelSpec(name="m", type="llamacpp", model_path="bundled")
    assert resolve_model_path(spec) == str(path)
    spec = ModelSpec(name="m", type="llamacpp", model_path=str(path))
    assert resolve_model_path(spec) == str(path)


def test_missing_gguf_is_a_clear_error(tmp_path):
    from backends.base import BackendError

    spec = ModelSpec(name="m", type="llamacpp", model_path=str(tmp_path / "nope.gguf"))
    with pytest.raises(BackendError, match="GGUF file not found"):
        resolve_model_path(spec)


def test_default_repeat_penalty_applied_when_unset():
    spec = ModelSpec(name="m", type="llamacpp", model_path="bundled")
    backend = LlamaCppBackend.from_spec(spec)
    assert backend.defaults.repetition_penalty == pytest.approx(1.1)
