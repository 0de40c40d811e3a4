"""`openai` and `tgi` backends against a REAL llama.cpp server on loopback (bundled GGUF),
plus failure modes: connection refused, a server killed mid-stream, and 429/500 answers from
a fake that speaks the OpenAI/TGI wire formats (tests/wire.py; no real server answers 429 on
demand)."""

import asyncio

import pytest

from backends.remote import RemoteBackend
from tests import conformance as c
from tests.conftest import free_port, start_llama_server


def remote(url, kind="openai", route="chat", **kw):
    return RemoteBackend(f"{kind}-test", url, kind=kind, route=route,
                         defaults=c.default_params(), **kw)


@pytest.fixture(params=["openai", "tgi"])
def llama_remote(request, llama_server):
    # llama.cpp's server exposes the OpenAI-compatible routes under /v1 (like TGI's Messages API).
    return remote(llama_server + "/v1", kind=request.param)


@pytest.mark.slow
async def test_streams_in_chunks(llama_remote):
    await c.check_streams_in_chunks(llama_remote)
    await llama_remote.aclose()


@pytest.mark.slow
async def test_finish_length(llama_remote):
    await c.check_finish_length(llama_remote)
    await llama_remote.aclose()


@pytest.mark.slow
async def test_cancel_is_prompt(llama_remote):
    # llama.cpp's server runs one generation at a time: if closing our stream did not stop
    # it, the next request would wait for ~1000 tokens (~20 s) before its first token.
    await c.check_cancel_is_prompt(llama_remote, max_close_s=1.0, next_ttft_s=5.0)
    await llama_remote.aclose()


@pytest.mark.slow
async def test_concurrent_streams(llama_remote):
    await c.check_concurrent_streams(llama_remote)
    await llama_remote.aclose()


async def test_connection_refused_is_a_clear_message_that_hides_the_endpoint(caplog):
    port = free_port()
    backend = remote(f"http://127.0.0.1:{port}/v1")
    err = await c.check_error_message(backend, "cannot reach")
    assert "Is it running?" in err
    # every user reads the message: the endpoint goes to the operator's log only
    assert "127.0.0.1" not in err and str(port) not in err
    assert f"127.0.0.1:{port}" in caplog.text


@pytest.mark.parametrize("status,needle", [(429, "rate-limiting"), (500, "HTTP 500"),
                                           (503, "HTTP 503"), (401, "credentials")])
async def test_http_errors_are_mapped(wire_server, status, needle):
    wire_server.config.status = status
    wire_server.config.retry_after = "0"
    backend = remote(wire_server.url + "/v1")
    await c.check_error_message(backend, needle)


async def test_429_is_retried_once_then_reported(wire_server):
    wire_server.config.status = 429
    wire_server.config.retry_after = "0"
    backend = remote(wire_server.url + "/v1", max_retries=1)
    err = await c.check_error_message(backend, "429")
    assert len(wire_server.config.requests) == 2  # one retry, then the user is told
    assert "Try again" in err


async def test_stream_cut_mid_answer_keeps_partial_text(wire_server):
    wire_server.config.die_after = 5
    backend = remote(wire_server.url + "/v1")
    texts, final = await c.collect(backend, max_new_tokens=50)
    assert final.finish_reason == "error"
    assert "broke in the middle" in final.error
    assert "".join(d.text for d in texts) == "tok " * 5


async def test_tgi_generate_stream_route(wire_server):
    """TGI's /generate_stream (servers without a chat route), wire format from TGI's docs."""
    backend = remote(wire_server.url, kind="tgi", route="generate")
    texts, final = await c.collect(backend, max_new_tokens=12, temperature=0.0, top_p=1.0)
    assert final.finish_reason == "length" and final.completion_tokens == 12
    assert "".join(d.text for d in texts) == "tok " * 12
    sent = wire_server.config.requests[-1]
    # TGI answers 422 to temperature=0 / top_p=1.0: they must not be sent as such.
    assert sent["parameters"].get("temperature") in (None,)
    assert sent["parameters"].get("top_p") is None
    assert sent["parameters"]["do_sample"] is False
    assert sent["inputs"].endswith("<|im_start|>assistant\n")


async def test_usage_and_params_reach_the_server(wire_server):
    backend = remote(wire_server.url + "/v1", model_id="my-model")
    texts, final = await c.collect(backend, max_new_tokens=10, temperature=0.3, top_p=0.8)
    assert final.finish_reason == "length"
    assert final.prompt_tokens == 7 and final.completion_tokens == 10
    sent = wire_server.config.requests[-1]
    assert sent["model"] == "my-model" and sent["max_tokens"] == 10
    assert sent["temperature"] == 0.3 and sent["top_p"] == 0.8 and sent["stream"] is True


@pytest.mark.slow
async def test_real_server_killed_mid_stream(gguf_path):
    proc, url = start_llama_server(gguf_path)
    backend = remote(url + "/v1")
    try:
        got = []
        final = None
        async for d in backend.stream(c.PROMPT, backend.defaults.merged(max_new_tokens=400)):
            if d.text:
                got.append(d.text)
                if len(got) == 3:
                    proc.kill()
            if d.is_final:
                final = d
        assert final is not None and final.finish_reason == "error", final
        assert "broke in the middle" in final.error or "Cannot reach" in final.error
        assert len(got) >= 3
    finally:
        proc.kill()
        await backend.aclose()


async def test_health(wire_server):
    assert await remote(wire_server.url + "/v1").health() is True
    assert await remote(f"http://127.0.0.1:{free_port()}/v1").health() is False


async def test_fast_stream_does_not_starve_the_event_loop(wire_server):
    """A fast upstream sends hundreds of tokens per network read; other tasks (other users'
    streams, the UI relay) must still get turns while one answer is being read."""
    import time

    wire_server.config.tokens = 3000
    wire_server.config.burst = True  # everything already buffered: parsing never waits on I/O
    backend = remote(wire_server.url + "/v1")
    ticks, gaps = 0, []
    done = asyncio.Event()

    async def ticker():
        nonlocal ticks
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
            ticks += 1

    task = asyncio.create_task(ticker())
    n = 0
    async for d in backend.stream(c.PROMPT, backend.defaults.merged(max_new_tokens=3000)):
        n += bool(d.text)
    done.set()
    await task
    assert n == 3000
    assert ticks >= n // 2, f"the ticker ran {ticks} times during {n} tokens"
    assert max(gaps) < 0.2, f"longest stall {max(gaps) * 1000:.0f} ms"
