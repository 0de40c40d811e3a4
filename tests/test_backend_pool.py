"""Several servers per model (backends/pool.py): least-busy routing, failover before the first
token, a clear error after it, servers that come back by themselves.

Two layers: the wire fake (tests/wire.py) for failures no real server produces on demand
(503/429 answers, a stream cut at a chosen token), and two REAL `python -m llama_cpp.server`
processes on loopback serving the bundled GGUF, each behind a small TCP proxy that counts the
chat requests passing through it (a count kept outside the pool under test).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time

import pytest

from backends import create_backend
from backends.base import GenerationParams
from backends.pool import EndpointPool
from backends.remote import RemoteBackend
from backends.spec import ModelSpec
from chatui.config import ConfigError, load_settings
from tests.conftest import free_port, start_app, stop_process, wait_http
from tests.wire import WireServer

HI = [{"role": "user", "content": "Say hello."}]
ALL_DOWN = "All 2 servers for this model are unreachable right now."


def make_pool(*urls: str, interval: float = 60.0) -> EndpointPool:
    members = [RemoteBackend("pooled", u, max_retries=0,
                             defaults=GenerationParams(max_new_tokens=5)) for u in urls]
    return EndpointPool("pooled", members, health_interval=interval,
                        defaults=GenerationParams(max_new_tokens=5))


async def ask(pool, max_new_tokens: int = 8, messages=HI) -> tuple[str, object]:
    deltas = [d async for d in pool.stream(messages, pool.defaults.merged(
        max_new_tokens=max_new_tokens))]
    return "".join(d.text for d in deltas), deltas[-1]


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}/v1"


@pytest.fixture
def two_wires():
    with WireServer() as a, WireServer() as b:
        a.config.tokens = b.config.tokens = 5
        yield a, b


# -- wire fake: routing ----------------------------------------------------------------------

async def test_requests_alternate_between_idle_servers(two_wires):
    a, b = two_wires
    pool = make_pool(a.url + "/v1", b.url + "/v1")
    try:
        for _ in range(6):
            text, final = await ask(pool)
            assert text == "tok " * 5 and final.finish_reason == "stop"
        assert len(a.config.requests) == len(b.config.requests) == 3
        assert [s["served"] for s in pool.endpoint_stats()] == [3, 3]
    finally:
        await pool.aclose()


async def test_the_least_busy_server_gets_the_next_request(two_wires):
    a, b = two_wires
    a.config.delay = b.config.delay = 0.05
    a.config.tokens = b.config.tokens = 40
    pool = make_pool(a.url + "/v1", b.url + "/v1")
    try:
        long = pool.stream(HI, pool.defaults.merged(max_new_tokens=40))
        first = await anext(long)  # a long answer is streaming from server A
        assert first.text and len(a.config.requests) == 1
        for _ in range(3):  # while it runs, every new request goes to idle B, not round robin
            text, final = await ask(pool, max_new_tokens=2)
            assert final.finish_reason == "length"
        assert len(a.config.requests) == 1 and len(b.config.requests) == 3
        assert [s["in_flight"] for s in pool.endpoint_stats()] == [1, 0]
        await long.aclose()  # the stop button: the slot is given back
        assert [s["in_flight"] for s in pool.endpoint_stats()] == [0, 0]
    finally:
        await pool.aclose()


# -- wire fake: failures ---------------------------------------------------------------------

@pytest.mark.parametrize("status", [503, 500, 429])
async def test_a_failure_before_the_first_token_is_retried_on_the_other_server(two_wires,
                                                                                status):
    a, b = two_wires
    a.config.status = status
    a.config.retry_after = "0"
    pool = make_pool(a.url + "/v1", b.url + "/v1")
    try:
        text, final = await ask(pool)  # round robin starts at A, which fails
        assert text == "tok " * 5 and final.finish_reason == "stop" and final.error is None
        assert len(a.config.requests) == 1 and len(b.config.requests) == 1
        assert [s["healthy"] for s in pool.endpoint_stats()] == [False, True]
        for _ in range(2):  # A is skipped while marked down
            assert (await ask(pool))[1].finish_reason == "stop"
        assert len(a.config.requests) == 1 and len(b.config.requests) == 3
    finally:
        await pool.aclose()


async def test_a_refused_connection_and_an_empty_stream_are_retried(two_wires):
    a, b = two_wires
    b.config.die_after = 0  # headers, then the socket closes before any text
    pool = make_pool(dead_url(), b.url + "/v1", a.url + "/v1")
    try:
        text, final = await ask(pool)
        assert text == "tok " * 5 and final.finish_reason == "stop"
        assert len(b.config.requests) == 1 and len(a.config.requests) == 1
        assert [s["healthy"] for s in pool.endpoint_stats()] == [False, False, True]
    finally:
        await pool.aclose()


async def test_a_stream_cut_mid_answer_ends_with_the_clear_error_and_keeps_its_text(two_wires):
    a, b = two_wires
    a.config.die_after = 3
    pool = make_pool(a.url + "/v1", b.url + "/v1")
    try:
        text, final = await ask(pool)
        assert final.finish_reason == "error" and "broke in the middle" in final.error
        assert text == "tok " * 3  # what the user already saw stays
        assert len(b.config.requests) == 0  # no retry: the text was already shown
        assert [s["healthy"] for s in pool.endpoint_stats()] == [False, True]
        assert (await ask(pool))[1].finish_reason == "stop"  # the next chat goes to B
        assert len(b.config.requests) == 1
    finally:
        await pool.aclose()


async def test_all_servers_down_is_one_clear_message_without_urls(caplog):
    urls = [dead_url(), dead_url()]
    pool = make_pool(*urls)
    try:
        text, final = await ask(pool)
        assert text == "" and final.finish_reason == "error"
        assert final.error.startswith(ALL_DOWN)
        assert "127.0.0.1" not in final.error and "http" not in final.error
        for url in urls:  # the operator finds the URLs in the log
            assert url in caplog.text
        # marked down, yet still tried as a last resort: the next chat says the same at once
        t = time.perf_counter()
        assert (await ask(pool))[1].error.startswith(ALL_DOWN)
        assert time.perf_counter() - t < 5
    finally:
        await pool.aclose()


async def test_all_servers_failing_or_rate_limiting(two_wires):
    a, b = two_wires
    a.config.status, b.config.status = 503, 500
    pool = make_pool(a.url + "/v1", b.url + "/v1")
    try:
        assert (await ask(pool))[1].error.startswith(ALL_DOWN)
        a.config.status = b.config.status = 429
        err = (await ask(pool))[1].error
        assert "rate-limiting" in err and "All 2 servers" in err and "http" not in err
    finally:
        await pool.aclose()


async def test_a_bad_request_is_not_sent_to_every_server(two_wires):
    a, b = two_wires
    a.config.status = 401  # every server would refuse the same token
    pool = make_pool(a.url + "/v1", b.url + "/v1")
    try:
        _, final = await ask(pool)
        assert final.finish_reason == "error" and "credentials" in final.error
        assert len(b.config.requests) == 0
        assert [s["healthy"] for s in pool.endpoint_stats()] == [True, True]
    finally:
        await pool.aclose()


# -- wire fake: health -----------------------------------------------------------------------

async def test_a_server_marked_down_comes_back_by_itself(two_wires):
    a, b = two_wires
    a.config.status = 503
    dead = dead_url()
    pool = make_pool(a.url + "/v1", b.url + "/v1", dead, interval=0.2)
    try:
        assert (await ask(pool))[1].finish_reason == "stop"
        assert pool.endpoint_stats()[0]["healthy"] is False
        a.config.status = 200
        deadline = time.monotonic() + 3
        while not pool.endpoint_stats()[0]["healthy"] and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert pool.endpoint_stats()[0]["healthy"], "the probe never brought A back"
        before = len(a.config.requests)
        for _ in range(4):
            assert (await ask(pool))[1].finish_reason == "stop"
        assert len(a.config.requests) - before == 2  # A takes its share again
        # a server that still does not answer stays down (only its health check is tried)
        assert pool.endpoint_stats()[2]["healthy"] is False
    finally:
        await pool.aclose()


async def test_health_info_and_aclose(two_wires):
    a, _ = two_wires
    pool = make_pool(a.url + "/v1", dead_url(), interval=0.2)
    assert await pool.health() is True  # any server answering is enough
    info = pool.info()
    assert info["endpoints"] == 2 and info["name"] == "pooled" and info["type"] == "openai"
    shown = repr(info) + repr(pool.endpoint_stats())
    assert "127.0.0.1" not in shown and "http" not in shown
    probe = pool._probe
    assert probe is not None and not probe.done()  # started lazily on this loop
    await pool.aclose()
    assert probe.done()
    assert await make_pool(dead_url(), dead_url()).health() is False


# -- configuration ---------------------------------------------------------------------------

def _spec(**kw) -> ModelSpec:
    return ModelSpec(name="m", type="openai", **kw)


def test_registry_builds_a_pool_only_for_several_urls():
    pool = create_backend(_spec(endpoint_urls=["http://a:1/v1", "http://b:2/v1"],
                                health_interval=2, timeout=7))
    assert isinstance(pool, EndpointPool) and pool.health_interval == 2
    assert [e.backend.timeout for e in pool.endpoints] == [7, 7]
    assert [e.backend.max_retries for e in pool.endpoints] == [0, 0]  # fail over, don't wait
    assert type(create_backend(_spec(endpoint_urls=["http://a:1/v1"]))) is RemoteBackend
    assert type(create_backend(_spec(endpoint_url="http://a:1/v1"))) is RemoteBackend


def test_config_errors_are_one_line(tmp_path):
    cases = {
        "endpoint_url: http://a/v1\n    endpoint_urls: [http://b/v1, http://c/v1]":
            "either endpoint_url or endpoint_urls",
        "endpoint_urls: [http://b/v1, http://b/v1]": "same server twice",
    }
    for body, needle in cases.items():
        p = tmp_path / "spaces.yaml"
        p.write_text(f"models:\n  - name: a\n    type: openai\n    {body}\n")
        with pytest.raises(ConfigError) as e:
            load_settings(p, env={})
        assert needle in str(e.value) and "models.0" in str(e.value)
        assert "\n" not in str(e.value)
    p.write_text("models:\n  - {name: a, type: llamacpp, endpoint_urls: [http://b/v1]}\n")
    with pytest.raises(ConfigError, match="endpoint_urls is for type tgi or openai"):
        load_settings(p, env={})


def test_the_endpoint_env_var_takes_a_comma_separated_list(tmp_path):
    p = tmp_path / "spaces.yaml"
    p.write_text("models:\n  - {name: smol, type: llamacpp, model_path: bundled}\n")
    s = load_settings(p, env={"CHATUI_ENDPOINT_URL": "http://a:8000/v1, http://b:8000/v1"})
    remote = s.models[0]
    assert remote.endpoint_urls == ["http://a:8000/v1", "http://b:8000/v1"]
    assert remote.endpoint_url is None and s.default_model == remote.name
    assert isinstance(create_backend(remote), EndpointPool)
    one = load_settings(p, env={"CHATUI_ENDPOINT_URL": "http://a:8000/v1"}).models[0]
    assert one.endpoint_url == "http://a:8000/v1" and one.endpoint_urls == []


# -- two real llama.cpp servers --------------------------------------------------------------

class CountingProxy:
    """A loopback TCP proxy in front of one server. It counts the chat requests that pass
    through it (request lines in the byte stream, so keep-alive reuse does not hide any):
    a second witness of where requests went, besides the pool's own counters."""

    NEEDLE = b"POST /v1/chat/completions"

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.requests = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, reader, writer):
        try:
            up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:  # the server is dead: the client sees the connection close
            writer.close()
            return

        async def pump(src, dst, count: bool):
            tail = b""
            try:
                while data := await src.read(65536):
                    if count:
                        seen = tail + data
                        self.requests += seen.count(self.NEEDLE)
                        tail = seen[-(len(self.NEEDLE) - 1):]
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_w, True), pump(up_r, writer, False))

    def close(self):
        self._loop.call_soon_threadsafe(self._server.close)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


class LlamaServers:
    """Two llama.cpp servers (one thread each, sharing the 2 cores), restartable on their port."""

    def __init__(self, gguf: str):
        self.gguf = gguf
        self.ports = [free_port(), free_port()]
        self.procs: list[subprocess.Popen | None] = [None, None]
        for i in range(2):
            self.start(i)
        self.proxies = [CountingProxy(p) for p in self.ports]

    def url(self, i: int) -> str:
        return f"http://127.0.0.1:{self.ports[i]}"

    def start(self, i: int) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", self.gguf, "--host",
             "127.0.0.1", "--port", str(self.ports[i]), "--n_ctx", "1024", "--n_threads", "1",
             "--interrupt_requests", "False"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs[i] = proc
        wait_http(self.url(i) + "/v1/models", timeout=90, proc=proc)

    def kill(self, i: int) -> None:
        self.procs[i].kill()  # SIGKILL: no goodbye to open connections
        self.procs[i].wait()

    def close(self):
        for proxy in self.proxies:
            proxy.close()
        for proc in self.procs:
            if proc is not None and proc.poll() is None:
                stop_process(proc)


@pytest.fixture(scope="module")
def llamas(gguf_path):
    servers = LlamaServers(gguf_path)
    yield servers
    servers.close()


def real_pool(urls, interval=0.5) -> EndpointPool:
    members = [RemoteBackend("smol", u + "/v1", max_retries=0, timeout=60) for u in urls]
    return EndpointPool("smol", members, health_interval=interval,
                        defaults=GenerationParams(temperature=0.6, max_new_tokens=8,
                                                  repetition_penalty=1.2))


@pytest.mark.slow
async def test_real_servers_share_the_requests(llamas):
    pool = real_pool([p.url for p in llamas.proxies])
    before = [p.requests for p in llamas.proxies]
    try:
        for q in ("Name a colour.", "Name a fruit.", "Name a city.", "Name a tree."):
            text, final = await ask(pool, 8, [{"role": "user", "content": q}])
            assert text.strip() and final.finish_reason in ("stop", "length"), final
        counted = [p.requests - b for p, b in zip(llamas.proxies, before)]
        assert counted == [2, 2] == [s["served"] for s in pool.endpoint_stats()]
        # two at once: least busy sends the second to the other server, not behind the first
        results = await asyncio.gather(*(ask(pool, 8, [{"role": "user", "content": q}])
                                         for q in ("Describe rain.", "Describe snow.")))
        assert all(f.finish_reason in ("stop", "length") for _, f in results)
        counted = [p.requests - b for p, b in zip(llamas.proxies, before)]
        assert counted == [3, 3], counted
    finally:
        await pool.aclose()


@pytest.mark.slow
async def test_real_server_killed_then_restarted(llamas):
    interval = 0.5
    pool = real_pool([llamas.url(0), llamas.url(1)], interval=interval)
    try:
        llamas.kill(0)
        for q in ("Name a colour.", "Name a fruit.", "Name a city."):
            text, final = await ask(pool, 8, [{"role": "user", "content": q}])
            assert final.finish_reason in ("stop", "length") and final.error is None, final
            assert text.strip()
        stats = pool.endpoint_stats()
        assert stats[0]["healthy"] is False and stats[0]["served"] == 0
        assert stats[1]["served"] == 3
        assert pool.info()["healthy_endpoints"] == 1 and await pool.health() is True

        await asyncio.to_thread(llamas.start, 0)  # the same port again
        up = time.monotonic()
        while not pool.endpoint_stats()[0]["healthy"] and time.monotonic() - up < 10:
            await asyncio.sleep(0.05)
        back_after = time.monotonic() - up
        assert pool.endpoint_stats()[0]["healthy"], "the probe never noticed the restart"
        # within a few probe intervals (plus a busy machine's scheduling slack)
        assert back_after < 4 * interval + 1.0, back_after
        for q in ("Name a bird.", "Name a river."):
            assert (await ask(pool, 8, [{"role": "user", "content": q}]))[1].error is None
        assert pool.endpoint_stats()[0]["served"] >= 1  # it takes traffic again
    finally:
        if llamas.procs[0].poll() is not None:
            llamas.start(0)
        await pool.aclose()


# -- the app, through gradio_client ----------------------------------------------------------

APP_CONFIG = """
models:
  - name: pooled
    type: openai
    endpoint_urls: ["{a}/v1", "{b}/v1"]
    health_interval: 0.5
    context_length: 1024
    system_prompt: "You are a helpful assistant."
    parameters: {{temperature: 0.6, top_p: 0.9, max_new_tokens: 16, repetition_penalty: 1.2}}
storage:
  db_path: {{db}}
"""


@pytest.mark.slow
def test_app_with_two_servers_answers_through_a_kill(llamas, tmp_path):
    import httpx
    from gradio_client import Client

    from chatui.render import ERROR_PREFIX
    from tests.test_app_e2e import chat, text_of

    a, b = llamas.proxies
    config = APP_CONFIG.format(a=a.url, b=b.url)
    proc, url = start_app(tmp_path, config)
    try:
        client = Client(url, verbose=False)
        before = [a.requests, b.requests]

        def answer(q: str) -> str:
            _, final, _ = chat(client, q, model="pooled", max_new_tokens=16)
            texts = [text_of(m) for m in final if m["role"] == "assistant"]
            assert not any(ERROR_PREFIX in t for t in texts), texts
            return texts[-1]

        for q in ("Name a colour.", "Name a fruit."):
            assert answer(q).strip()
        assert [a.requests - before[0], b.requests - before[1]] == [1, 1]

        llamas.kill(0)  # server A dies; its proxy now drops every connection
        before_b = b.requests
        for q in ("Name a city.", "Name a tree.", "Name a bird."):
            assert answer(q).strip()  # the user sees answers, never an error
        assert b.requests - before_b == 3
        health = httpx.get(url + "healthz", timeout=10).json()
        assert health["models"] == {"pooled": True}
        log = (tmp_path / "app.log").read_text()
        assert "marked down" in log and a.url in log  # the operator learns which one
    finally:
        stop_process(proc)
        if llamas.procs[0].poll() is not None:
            llamas.start(0)
