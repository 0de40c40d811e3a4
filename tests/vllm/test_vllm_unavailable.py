"""The vllm backend without vLLM: clear one-line errors, one engine build for many callers.

These run in the app's main environment (no vllm needed, not marked `vllm`).
"""

from __future__ import annotations

import asyncio
import importlib.util

import pytest

from backends import BackendError, ModelSpec, create_backend
from backends import vllm as vllm_backend
from backends.vllm import NOT_INSTALLED, VllmBackend

_real_find_spec = importlib.util.find_spec
SPEC = ModelSpec(name="tiny", type="vllm", model_path="/nowhere/model", context_length=1024)


def hide_vllm(monkeypatch):
    monkeypatch.setattr(vllm_backend.importlib.util, "find_spec",
                        lambda name, *a: None if name == "vllm" else _real_find_spec(name, *a))


def test_missing_vllm_is_one_clear_line(monkeypatch):
    hide_vllm(monkeypatch)
    with pytest.raises(BackendError) as err:
        create_backend(SPEC)
    assert err.value.message == "vLLM is not installed: pip install '.[vllm]'" == NOT_INSTALLED
    assert err.value.kind == "unavailable"
    assert "\n" not in str(err.value)


def test_missing_vllm_for_real():
    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed in this environment")
    with pytest.raises(BackendError, match=r"vLLM is not installed: pip install '\.\[vllm\]'"):
        create_backend(SPEC)


async def test_missing_vllm_ends_the_stream_with_that_message(monkeypatch):
    hide_vllm(monkeypatch)
    backend = VllmBackend("tiny", "/nowhere/model")
    deltas = [d async for d in backend.stream([{"role": "user", "content": "hi"}])]
    assert len(deltas) == 1 and deltas[0].finish_reason == "error"
    assert deltas[0].error == NOT_INSTALLED
    # a later request tries again (vllm may have been installed meanwhile) and says the same
    deltas = [d async for d in backend.stream([{"role": "user", "content": "hi"}])]
    assert deltas[-1].error == NOT_INSTALLED
    await backend.aclose()


def test_model_path_is_required():
    with pytest.raises(BackendError, match="needs model_path"):
        create_backend(ModelSpec(name="x", type="vllm"))


def test_engine_settings_come_from_the_spec():
    spec = ModelSpec(name="m", type="vllm", model_path="org/model", context_length=4096,
                     engine={"dtype": "bfloat16", "max_num_seqs": 8, "enforce_eager": True})
    b = VllmBackend(spec.name, spec.model_path, context_length=spec.context_length,
                    engine=spec.engine)
    assert b.max_model_len == 4096  # defaults to the spec's context length
    b2 = VllmBackend("m", "org/model", context_length=4096,
                     engine=spec.engine.model_copy(update={"max_model_len": 1024}))
    assert b2.max_model_len == 1024
    assert b.info()["loaded"] is False
    # without a tokenizer, count_tokens falls back to the base estimate
    assert b.count_tokens([{"role": "user", "content": "hello there"}]) > 0


class _FakeEngine:
    def __init__(self):
        self.shut = 0

    def get_tokenizer(self):
        return None

    def shutdown(self, timeout=None):
        self.shut += 1


async def test_concurrent_first_requests_build_one_engine():
    backend = VllmBackend("tiny", "/nowhere/model")
    builds = 0

    async def build():
        nonlocal builds
        builds += 1
        await asyncio.sleep(0.05)
        return _FakeEngine()

    backend._build_engine = build
    engines = await asyncio.gather(*(backend.engine() for _ in range(8)))
    assert builds == 1 and all(e is engines[0] for e in engines)
    await backend.aclose()
    assert engines[0].shut == 1 and not backend.loaded
    with pytest.raises(BackendError, match="shut down"):
        await backend.engine()


async def test_a_cancelled_first_request_does_not_leak_the_engine():
    """Stop pressed during a cold start: the build goes on and the engine is kept."""
    backend = VllmBackend("tiny", "/nowhere/model")

    async def build():
        await asyncio.sleep(0.1)
        return _FakeEngine()

    backend._build_engine = build
    first = asyncio.ensure_future(backend.engine())
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    engine = await backend.engine()
    assert backend.loaded
    await backend.aclose()
    assert engine.shut == 1


async def test_failed_start_is_one_line_and_retried():
    backend = VllmBackend("tiny", "/nowhere/model")
    calls = 0

    async def build():
        nonlocal calls
        calls += 1
        raise RuntimeError("Engine core initialization failed. See root cause above.\nmore")

    backend._build_engine = build
    deltas = [d async for d in backend.stream([{"role": "user", "content": "hi"}])]
    assert deltas[-1].finish_reason == "error"
    assert deltas[-1].error == ("vLLM engine for tiny failed to start: RuntimeError: Engine core "
                                "initialization failed. See root cause above.")
    deltas = [d async for d in backend.stream([{"role": "user", "content": "hi"}])]
    assert calls == 2
    await backend.aclose()


async def test_aclose_during_startup_shuts_the_new_engine_down():
    backend = VllmBackend("tiny", "/nowhere/model")
    built = []

    async def build():
        await asyncio.sleep(0.1)
        built.append(_FakeEngine())
        return built[-1]

    backend._build_engine = build
    waiter = asyncio.ensure_future(backend.engine())
    await asyncio.sleep(0.01)
    await backend.aclose()
    with pytest.raises(BackendError, match="shut down"):
        await waiter
    assert len(built) == 1 and built[0].shut == 1 and not backend.loaded
