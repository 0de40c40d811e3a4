"""Chat streaming benchmark: time-to-first-token and tokens/s, side by side in one run.

    python bench/bench_chat.py [--quick] [--skip-llama] [--out bench/results/chat.json]

Three paths, measured against the same upstream in the same run:
  backend   `RemoteBackend(...).stream()` called directly (no Gradio at all)
  app       `python app.py` (this project) through gradio_client, `/chat` endpoint
  chatif    the 10-line baseline: a minimal `gr.ChatInterface` over the same RemoteBackend
            that yields once per token, through gradio_client, `/chat` endpoint

Two upstreams (both OpenAI-compatible, both separate processes on loopback):
  synthetic `tests.wire.WireServer`, delay 0: streams as fast as it can (relay ceiling)
  llama     `python -m llama_cpp.server` with the bundled SmolLM2-135M GGUF

Concurrency 1 (several samples, paths interleaved) and 32 (one round of 32 simultaneous
streams per path; 32 gradio_client Clients in threads). Every sample is a fresh
conversation (history=[] and a new gradio session), see DESIGN.md "Traps".

Times (all perf_counter in this process):
  TTFT        submit → the first output visible to gradio_client user code whose assistant
              text is non-empty (what `for out in job` would see). gradio_client's internal
              reader polls its message queue every 50 ms, so this carries 0–50 ms of client
              jitter; `TTFT wire` is the same snapshot timed when its SSE message reached
              this process (gradio_client's reader thread), without that polling.
  tok/s       tokens in the final answer / (last snapshot − first text snapshot). Tokens are
              counted from the final text (the app coalesces updates, so snapshots ≠ tokens):
              "tok" occurrences for the synthetic upstream, the GGUF's tokenizer for llama.
  aggregate   all tokens of a round / (last stream done − first submit).

Prints a table and the side-by-side ratios; writes bench/results/chat.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections import deque
from pathlib import Path

from _common import ROOT, timed_client  # noqa: E402  (repo on sys.path, offline env)

from backends.base import GenerationParams  # noqa: E402
from backends.remote import RemoteBackend  # noqa: E402
from tests.conftest import free_port, start_app, start_llama_server, wait_http  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "chat.json"
PATHS = ("backend", "app", "chatif")
TOKEN_TEXT = "tok "
PROMPT = {"synthetic": "Say something.",
          "llama": "Write a long story about a lighthouse keeper and a storm."}
TEMPERATURE, TOP_P = 0.7, 0.95

# --------------------------------------------------------------------------- upstreams

WIRE_SCRIPT = """
import sys, time
sys.path.insert(0, {root!r})
import http.server
# socketserver's default listen backlog is 5: 32 simultaneous connects overflow it (SYN
# retries after 1 s, resets). A real server has a deep backlog.
http.server.ThreadingHTTPServer.request_queue_size = 512
from tests.wire import WireServer
s = WireServer(port={port})
s.config.tokens = 10**7          # the request's max_tokens decides the length
s.config.token_text = {tok!r}
s.config.delay = 0.0
s.__enter__()
print(s.url, flush=True)
while True:
    time.sleep(3600)
"""

# The baseline a user writes in ten lines (plus the model/max_new_tokens inputs so one
# process serves both upstreams and every token count).
CHATIF_SCRIPT = """
import json, sys
sys.path.insert(0, {root!r})
import gradio as gr
from backends.base import GenerationParams
from backends.remote import RemoteBackend

backends = {{name: RemoteBackend(name, url, kind="openai", context_length=4096)
            for name, url in json.loads({urls!r}).items()}}

async def fn(message, history, model, max_new_tokens):
    params = GenerationParams(temperature={temp}, top_p={top_p},
                              max_new_tokens=int(max_new_tokens))
    text = ""
    async for d in backends[model].stream([{{"role": "user", "content": message}}], params):
        if d.text:
            text += d.text
            yield text  # once per token

demo = gr.ChatInterface(fn, additional_inputs=[gr.Textbox(), gr.Number(precision=0)],
                        api_name="chat")
demo.queue(default_concurrency_limit=64).launch(
    server_name="127.0.0.1", server_port={port}, max_threads=80)
"""

APP_CONFIG = """
models:
{models}
storage:
  db_path: {{db}}
conversations:
  auto_titles: false   # one title request per answer here (a fresh chat each sample)
websearch:
  enabled: false
limits:
  messages_per_minute: 1000000
  max_concurrent_per_user: 1000
  max_turns: 1000
server:
  concurrency_limit: 64
  max_threads: 80
"""

MODEL_ENTRY = """  - name: {name}
    type: openai
    endpoint_url: {url}/v1
    context_length: 4096
    parameters: {{temperature: {temp}, top_p: {top_p}, max_new_tokens: 4096}}
"""


class Procs:
    """Every subprocess this bench starts, stopped by handle at the end."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def add(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(proc)
        return proc

    def check(self) -> None:
        """Say so when a server died mid-run (its errors would otherwise look like its speed)."""
        for proc in self.procs:
            if proc.poll() is not None and not getattr(proc, "_reported", False):
                proc._reported = True
                print(f"  !! {proc.args if isinstance(proc.args, str) else proc.args[:2]} "
                      f"exited with {proc.returncode} during the run", flush=True)
                log_path = getattr(proc, "log_path", None)
                if log_path is not None and Path(log_path).exists():
                    print(textwrap.indent(Path(log_path).read_text()[-1500:], "     | "))

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def start_wire(procs: Procs) -> str:
    port = free_port()
    script = WIRE_SCRIPT.format(root=str(ROOT), port=port, tok=TOKEN_TEXT)
    proc = procs.add(subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/v1/models", timeout=30, proc=proc)
    return url


def start_chatif(procs: Procs, tmp: Path, urls: dict[str, str]) -> str:
    port = free_port()
    script = tmp / "chatif_baseline.py"
    script.write_text(CHATIF_SCRIPT.format(root=str(ROOT), urls=json.dumps(urls), port=port,
                                           temp=TEMPERATURE, top_p=TOP_P))
    log = open(tmp / "chatif.log", "w")
    proc = procs.add(subprocess.Popen([sys.executable, str(script)], cwd=tmp, stdout=log,
                                      stderr=subprocess.STDOUT))
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_http(url, timeout=90, proc=proc)
    except Exception:
        raise RuntimeError((tmp / "chatif.log").read_text()[-3000:]) from None
    proc.log_path = tmp / "chatif.log"
    return url


def start_chat_app(procs: Procs, tmp: Path, urls: dict[str, str]) -> str:
    models = "".join(MODEL_ENTRY.format(name=n, url=u, temp=TEMPERATURE, top_p=TOP_P)
                     for n, u in urls.items())
    folder = tmp / "app"
    folder.mkdir()
    proc, url = start_app(folder, APP_CONFIG.format(models=models.rstrip("\n")))
    proc.log_path = folder / "app.log"
    procs.add(proc)
    return url


# --------------------------------------------------------------------------- token counting

class TokenCounter:
    def __init__(self):
        self._llama = None

    def __call__(self, upstream: str, text: str) -> int:
        if upstream == "synthetic":
            return text.count(TOKEN_TEXT.strip())
        if self._llama is None:
            import llama_cpp

            from backends.llamacpp import bundled_gguf

            self._llama = llama_cpp.Llama(str(bundled_gguf()), vocab_only=True, verbose=False)
        return len(self._llama.tokenize(text.encode(), add_bos=False, special=False))


# --------------------------------------------------------------------------- gradio_client

class _TimedDeque(deque):
    """An event's pending SSE messages, logged as they arrive from the socket."""

    def __init__(self, *args):
        super().__init__(*args)
        self.log: list[tuple[float, bool]] = []  # (arrival, becomes an output)

    def append(self, msg):
        out = False
        if isinstance(msg, dict) and msg.get("msg") != "process_completed":
            out = bool((msg.get("output") or {}).get("data"))
        self.log.append((time.perf_counter(), out))
        super().append(msg)


class _TimedEvents(dict):
    def __init__(self):
        super().__init__()
        self.logs: dict[str, list] = {}

    def _wrap(self, key, value):
        if isinstance(value, deque) and not isinstance(value, _TimedDeque):
            value = _TimedDeque(value)
        if isinstance(value, _TimedDeque):
            self.logs[key] = value.log
        return value

    def __setitem__(self, key, value):
        super().__setitem__(key, self._wrap(key, value))

    def setdefault(self, key, default=None):
        if key in self:
            return self[key]
        self[key] = default
        return self[key]


def make_client(url: str):
    """A timed gradio_client Client that also logs SSE message arrival per event."""
    client = timed_client(url)
    client.pending_messages_per_event = _TimedEvents()
    return client


def _content_text(content) -> str:
    if isinstance(content, list):
        return "".join(c.get("text", "") if isinstance(c, dict) else str(c) for c in content)
    return content if isinstance(content, str) else ""


def app_text(output) -> str:
    """The app's /chat output is the whole chat (first output when there are several):
    the text of its assistant messages."""
    if isinstance(output, tuple):
        output = output[0] if output else None
    if not isinstance(output, list):
        return ""
    return "".join(_content_text(m.get("content")) for m in output
                   if isinstance(m, dict) and m.get("role") == "assistant"
                   and not (m.get("metadata") or {}).get("title"))


def chatif_text(output) -> str:
    if isinstance(output, (list, tuple)):  # (response, …) if the client keeps a tuple
        output = output[0] if output else ""
    return output if isinstance(output, str) else ""


_TOKENS: dict[int, str] = {}


def app_args(client, prompt: str, model: str, n: int, client_index: int) -> tuple:
    """Positional args for the app's /chat, built from the endpoint's declared parameters:
    (message, conversation_id — or history for a ChatInterface —, model, system_prompt,
    temperature, top_p, max_new_tokens, web_search[, token]). A `token` parameter (anonymous identity, gr.BrowserState) gets
    one fixed 43-character token per client, i.e. one user per simulated browser."""
    import secrets

    values = {"message": prompt, "history": [], "conversation_id": "", "model": model,
              "system_prompt": "",
              "temperature": TEMPERATURE, "top_p": TOP_P, "max_new_tokens": n,
              "web_search": False}
    try:
        params = client._info["named_endpoints"]["/chat"]["parameters"]
    except (AttributeError, KeyError, TypeError):
        return tuple(values.values())
    out = []
    for p in params:
        name = p.get("parameter_name") or p.get("label")
        if name in values:
            out.append(values[name])
        elif name and "token" in name:
            out.append(_TOKENS.setdefault(client_index, secrets.token_urlsafe(32)))
        elif p.get("parameter_has_default"):
            out.append(p.get("parameter_default"))
        else:
            raise RuntimeError(f"app /chat has an unknown required parameter {name!r}")
    return tuple(out)


def gradio_sample(client, args: tuple, text_of, upstream: str, count, expected: int | None,
                  barrier: threading.Barrier | None = None) -> dict:
    client.reset_session()  # fresh conversation: ChatInterface keeps history per session
    if barrier is not None:
        barrier.wait()
    t0 = time.perf_counter()
    job = client.submit(*args, api_name="/chat")
    error = None
    try:
        job.result(timeout=600)
    except Exception as e:  # noqa: BLE001
        error = f"{type(e).__name__}: {e}"[:300]
    helper = job.communicator
    outputs = helper.job.outputs
    log = client.pending_messages_per_event.logs.pop(helper.event_id, [])
    wire = [t for t, is_output in log if is_output]
    sample = {"t0": t0, "snapshots": len(outputs), "error": error}
    if log:  # the event's first SSE message (estimation/process_starts): stream is open
        sample["sse_open"] = log[0][0] - t0
    first = next((i for i, o in enumerate(outputs) if text_of(o)), None)
    if first is None:
        sample["error"] = error or "no assistant text"
        return sample
    text = text_of(outputs[-1])
    last = outputs[-1][0] if isinstance(outputs[-1], tuple) and outputs[-1] else outputs[-1]
    if "⚠️ **Error:**" in text or (isinstance(last, list) and any(
            "⚠️ **Error:**" in _content_text(m.get("content")) for m in last
            if isinstance(m, dict))):
        sample["error"] = error or "app error: " + text[-200:]
    tokens = count(upstream, text)
    if expected is not None and tokens != expected and not sample["error"]:
        sample["error"] = f"got {tokens} tokens, expected {expected}"
    sample.update(tokens=tokens, ttft=outputs.times[first] - t0, done=outputs.times[-1] - t0)
    if len(wire) == len(outputs):
        sample.update(ttft_wire=wire[first] - t0, done_wire=wire[-1] - t0)
    return sample


# --------------------------------------------------------------------------- backend alone

class LoopThread:
    """One event loop for every backend-alone sample (RemoteBackend pools per loop)."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro, timeout=600):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self):
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


async def backend_sample(backend: RemoteBackend, prompt: str, n: int, upstream: str, count,
                         expected: int | None) -> dict:
    params = GenerationParams(temperature=TEMPERATURE, top_p=TOP_P, max_new_tokens=n)
    t0 = time.perf_counter()
    first = last = None
    text, deltas, error = "", 0, None
    async for d in backend.stream([{"role": "user", "content": prompt}], params):
        if d.text:
            now = time.perf_counter()
            first = first if first is not None else now
            last = now
            text += d.text
            deltas += 1
        if d.error:
            error = d.error[:300]
    end = time.perf_counter()
    sample = {"t0": t0, "snapshots": deltas, "error": error}
    if first is None:
        sample["error"] = error or "no text"
        return sample
    tokens = count(upstream, text)
    if expected is not None and tokens != expected and not error:
        sample["error"] = f"got {tokens} tokens, expected {expected}"
    sample.update(tokens=tokens, ttft=first - t0, done=last - t0, end=end - t0)
    sample.update(ttft_wire=sample["ttft"], done_wire=sample["done"])
    return sample


# --------------------------------------------------------------------------- the runner

class Bench:
    def __init__(self, urls: dict[str, str], app_url: str, chatif_url: str, streams: int):
        self.urls = urls
        self.count = TokenCounter()
        self.loop = LoopThread()
        self.backends = {name: RemoteBackend(name, url + "/v1", kind="openai",
                                             context_length=4096, timeout=600)
                         for name, url in urls.items()}
        t = time.perf_counter()
        self.clients = {"app": self._clients(app_url, streams),
                        "chatif": self._clients(chatif_url, streams)}
        self.client_setup_s = time.perf_counter() - t

    @staticmethod
    def _clients(url: str, n: int) -> list:
        out: list = [None] * n

        def make(i):
            out[i] = make_client(url)

        threads = [threading.Thread(target=make, args=(i,)) for i in range(n)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return out

    def _args(self, path: str, upstream: str, n: int, client_index: int) -> tuple:
        prompt = PROMPT[upstream]
        if path == "chatif":
            return (prompt, upstream, n)
        return app_args(self.clients["app"][client_index], prompt, upstream, n, client_index)

    def one(self, path: str, upstream: str, n: int, client_index: int = 0,
            barrier: threading.Barrier | None = None) -> dict:
        expected = n if upstream == "synthetic" else None
        if path == "backend":
            return self.loop.run(backend_sample(self.backends[upstream], PROMPT[upstream], n,
                                                upstream, self.count, expected))
        text_of = app_text if path == "app" else chatif_text
        return gradio_sample(self.clients[path][client_index],
                             self._args(path, upstream, n, client_index),
                             text_of, upstream, self.count, expected, barrier)

    def round(self, path: str, upstream: str, n: int, streams: int) -> tuple[list[dict], float]:
        """`streams` simultaneous samples; returns them and the round's wall time."""
        expected = n if upstream == "synthetic" else None
        if path == "backend":
            async def many():
                return await asyncio.gather(*[
                    backend_sample(self.backends[upstream], PROMPT[upstream], n, upstream,
                                   self.count, expected) for _ in range(streams)])
            t0 = time.perf_counter()
            samples = self.loop.run(many())
            return list(samples), time.perf_counter() - t0
        barrier = threading.Barrier(streams)
        samples: list = [None] * streams

        def run(i):
            try:
                samples[i] = self.one(path, upstream, n, i, barrier)
            except Exception as e:  # noqa: BLE001
                samples[i] = {"t0": time.perf_counter(), "error": f"{type(e).__name__}: {e}"}

        threads = [threading.Thread(target=run, args=(i,)) for i in range(streams)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return samples, 0.0

    def close(self):
        for clients in self.clients.values():
            for c in clients:
                try:
                    c.close()
                except Exception:  # noqa: BLE001
                    pass

        async def close_all():
            for b in self.backends.values():
                await b.aclose()
        try:
            self.loop.run(close_all(), timeout=10)
        except Exception:  # noqa: BLE001
            pass
        self.loop.close()


def pct(values, q):
    values = sorted(values)
    if not values:
        return None
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def summarize(samples: list[dict], streams: int) -> dict:
    ok = [s for s in samples if not s.get("error") and "ttft" in s]
    ttft = [s["ttft"] * 1000 for s in ok]
    wire = [s["ttft_wire"] * 1000 for s in ok if "ttft_wire" in s]
    # tok/s while streaming (first → last snapshot); None when the whole answer arrived in
    # one burst (< 5 ms apart: the server buffered it before the client's stream was open).
    tps = [s["tokens"] / (s["done"] - s["ttft"]) for s in ok if s["done"] - s["ttft"] >= 0.005]
    e2e = [s["tokens"] / s["done"] for s in ok if s["done"] > 0]
    out = {"samples": len(samples), "errors": len(samples) - len(ok),
           "error_examples": sorted({s["error"] for s in samples if s.get("error")})[:3],
           "ttft_ms_p50": pct(ttft, 0.5), "ttft_ms_p95": pct(ttft, 0.95),
           "ttft_wire_ms_p50": pct(wire, 0.5), "ttft_wire_ms_p95": pct(wire, 0.95),
           "sse_open_ms_p50": pct([s["sse_open"] * 1000 for s in ok if "sse_open" in s], 0.5),
           "tok_s_per_stream_p50": pct(tps, 0.5),
           "bursts": sum(1 for s in ok if s["done"] - s["ttft"] < 0.005),
           "tok_s_e2e_p50": pct(e2e, 0.5),
           "tokens_p50": pct([s["tokens"] for s in ok], 0.5),
           "snapshots_p50": pct([s.get("snapshots", 0) for s in ok], 0.5)}
    if streams > 1 and ok:
        start = min(s["t0"] for s in samples)
        end = max(s["t0"] + s["done"] for s in ok)
        out["tok_s_aggregate"] = sum(s["tokens"] for s in ok) / (end - start)
        out["round_s"] = end - start
    elif ok:
        out["tok_s_aggregate"] = out["tok_s_e2e_p50"]
    return out


def run_cells(bench: Bench, upstream: str, plan: dict, log) -> dict:
    cells = {}
    n1, samples1, nc, streams = plan["n1"], plan["samples1"], plan["nc"], plan["streams"]
    # Warm-up: one stream per path (connections, imports, llama.cpp prompt cache).
    for path in PATHS:
        bench.one(path, upstream, min(n1, 64))
    if plan.get("warm_round"):
        for path in PATHS:
            bench.round(path, upstream, plan["warm_round"], streams)
    # c=1: paths interleaved, order rotated each sample, so drift hits all alike.
    c1 = {p: [] for p in PATHS}
    for i in range(samples1):
        order = PATHS[i % 3:] + PATHS[:i % 3]
        for path in order:
            c1[path].append(bench.one(path, upstream, n1))
    for path in PATHS:
        cells[(path, upstream, 1)] = {"max_new_tokens": n1, **summarize(c1[path], 1),
                                      "raw": c1[path]}
        log(path, upstream, 1, cells[(path, upstream, 1)])
    for path in PATHS:
        samples, _ = bench.round(path, upstream, nc, streams)
        cells[(path, upstream, streams)] = {"max_new_tokens": nc,
                                            **summarize(samples, streams), "raw": samples}
        log(path, upstream, streams, cells[(path, upstream, streams)])
    return cells


def fmt(v, spec=".0f"):
    return "-" if v is None else format(v, spec)


def ratio(a, b):
    return None if a is None or b in (None, 0) else a / b


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="~1 minute smoke run")
    ap.add_argument("--samples", type=int, default=None,
                    help="samples per path at concurrency 1 (more = tighter TTFT p50)")
    ap.add_argument("--skip-llama", action="store_true", help="synthetic upstream only")
    ap.add_argument("--streams", type=int, default=32)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    streams = args.streams
    if args.quick:
        plans = {"synthetic": dict(n1=1000, samples1=2, nc=200, streams=streams),
                 "llama": dict(n1=24, samples1=2, nc=16, streams=min(streams, 8))}
    else:
        plans = {"synthetic": dict(n1=4000, samples1=5, nc=500, streams=streams,
                                   warm_round=16),
                 "llama": dict(n1=64, samples1=5, nc=16, streams=streams)}
    if args.samples:
        for plan in plans.values():
            plan["samples1"] = args.samples
    upstreams = ["synthetic"] + ([] if args.skip_llama else ["llama"])

    procs = Procs()
    started = time.perf_counter()
    load_before = _loadavg()
    if load_before and load_before[0] > (os.cpu_count() or 1):
        print(f"warning: load average {load_before[0]:.1f} on {os.cpu_count()} CPUs before the"
              " run: other processes compete for the CPU; absolute numbers will be inflated",
              flush=True)
    rows = []

    def log(path, upstream, conc, c):
        procs.check()
        rows.append((path, upstream, conc, c))
        print(f"  {path:8s} {upstream:9s} c={conc:<3d} TTFT p50 {fmt(c['ttft_ms_p50'], '.1f')} ms"
              f" (wire {fmt(c['ttft_wire_ms_p50'], '.1f')}) p95 {fmt(c['ttft_ms_p95'], '.1f')} ms"
              f"  {fmt(c['tok_s_per_stream_p50'])} tok/s/stream"
              f"  agg {fmt(c.get('tok_s_aggregate'))}  err {c['errors']}", flush=True)

    try:
        with tempfile.TemporaryDirectory(prefix="bench_chat_") as tmpdir:
            tmp = Path(tmpdir)
            urls = {"synthetic": start_wire(procs)}
            if "llama" in upstreams:
                from backends.llamacpp import bundled_gguf

                proc, llama_url = start_llama_server(str(bundled_gguf()), n_ctx=2048)
                procs.add(proc)
                urls["llama"] = llama_url
            app_url = start_chat_app(procs, tmp, urls)
            chatif_url = start_chatif(procs, tmp, urls)
            print(f"upstreams {urls}\napp {app_url}  chatif {chatif_url}  "
                  f"({time.perf_counter() - started:.1f}s to start)", flush=True)
            bench = Bench(urls, app_url, chatif_url, streams)
            print(f"{2 * streams} gradio clients in {bench.client_setup_s:.1f}s", flush=True)
            cells = {}
            try:
                for upstream in upstreams:
                    cells.update(run_cells(bench, upstream, plans[upstream], log))
            finally:
                bench.close()
    finally:
        procs.stop()
    total = time.perf_counter() - started
    load_after = _loadavg()

    # ---------------------------------------------------------------- table + ratios
    print()
    head = (f"{'path':8s} {'upstream':9s} {'conc':>4s} {'TTFT p50':>9s} {'p95':>8s} "
            f"{'wire p50':>9s} {'wire p95':>9s} {'sse p50':>8s} {'tok/s/str':>10s} {'e2e tok/s':>10s} "
            f"{'agg tok/s':>10s} {'burst':>5s} "
            f"{'snaps':>6s} {'err':>4s}")
    print(head)
    print("-" * len(head))
    for path, upstream, conc, c in sorted(rows, key=lambda r: (r[1] != "synthetic", r[2],
                                                                PATHS.index(r[0]))):
        print(f"{path:8s} {upstream:9s} {conc:4d} {fmt(c['ttft_ms_p50'], '.1f'):>9s} "
              f"{fmt(c['ttft_ms_p95'], '.1f'):>8s} {fmt(c['ttft_wire_ms_p50'], '.1f'):>9s} "
              f"{fmt(c['ttft_wire_ms_p95'], '.1f'):>9s} {fmt(c.get('sse_open_ms_p50'), '.1f'):>8s} "
              f"{fmt(c['tok_s_per_stream_p50']):>10s} {fmt(c['tok_s_e2e_p50']):>10s} "
              f"{fmt(c.get('tok_s_aggregate')):>10s} {c['bursts']:5d} {fmt(c['snapshots_p50']):>6s} "
              f"{c['errors']:4d}")
    print("(TTFT in ms; 'wire' = SSE message arrival, without gradio_client's 50 ms polling;"
          " 'sse' = first SSE message of the event, i.e. when the server served the stream)")

    def cell(path, upstream, conc):
        return cells.get((path, upstream, conc)) or {}

    ratios = {}
    for upstream in upstreams:
        app1, ci1, be1 = (cell(p, upstream, 1) for p in ("app", "chatif", "backend"))
        appN, ciN, beN = (cell(p, upstream, streams) for p in ("app", "chatif", "backend"))

        def diff(a, b, key):
            return None if a.get(key) is None or b.get(key) is None else a[key] - b[key]

        ratios[upstream] = {
            "app_minus_chatif_ttft_ms_p50": diff(app1, ci1, "ttft_ms_p50"),
            "app_minus_chatif_ttft_wire_ms_p50": diff(app1, ci1, "ttft_wire_ms_p50"),
            "app_minus_backend_ttft_ms_p50": diff(app1, be1, "ttft_ms_p50"),
            "chatif_minus_backend_ttft_ms_p50": diff(ci1, be1, "ttft_ms_p50"),
            f"app_ttft_p95_c{streams}_over_c1": ratio(appN.get("ttft_ms_p95"),
                                                      app1.get("ttft_ms_p95")),
            f"chatif_ttft_p95_c{streams}_over_c1": ratio(ciN.get("ttft_ms_p95"),
                                                         ci1.get("ttft_ms_p95")),
            f"backend_ttft_p95_c{streams}_over_c1": ratio(beN.get("ttft_ms_p95"),
                                                          be1.get("ttft_ms_p95")),
            f"app_errors_c{streams}": appN.get("errors"),
            "app_tok_s_e2e_c1": app1.get("tok_s_e2e_p50"),
            "chatif_tok_s_e2e_c1": ci1.get("tok_s_e2e_p50"),
            "backend_tok_s_e2e_c1": be1.get("tok_s_e2e_p50"),
            "app_over_chatif_tok_s_e2e_c1": ratio(app1.get("tok_s_e2e_p50"),
                                                  ci1.get("tok_s_e2e_p50")),
            "app_tok_s_streaming_c1": app1.get("tok_s_per_stream_p50"),
            "chatif_tok_s_streaming_c1": ci1.get("tok_s_per_stream_p50"),
            f"app_over_backend_tok_s_c{streams}_aggregate": ratio(
                appN.get("tok_s_aggregate"), beN.get("tok_s_aggregate")),
        }
    syn = ratios.get("synthetic", {})
    p95r = syn.get(f"app_ttft_p95_c{streams}_over_c1")
    targets = {
        "app_ttft_overhead_vs_chatinterface_le_10ms": {
            "value_ms": syn.get("app_minus_chatif_ttft_ms_p50"),
            "value_wire_ms": syn.get("app_minus_chatif_ttft_wire_ms_p50"),
            "pass": (syn.get("app_minus_chatif_ttft_ms_p50") is not None
                     and syn["app_minus_chatif_ttft_ms_p50"] <= 10)},
        f"app_ttft_p95_c{streams}_over_c1_le_2x_0_errors": {
            "value": p95r, "errors": syn.get(f"app_errors_c{streams}"),
            "pass": p95r is not None and p95r <= 2 and syn.get(f"app_errors_c{streams}") == 0},
        # end-to-end (tokens / submit → last snapshot): robust when the answer arrives in one
        # burst, and conservative (it includes the TTFT).
        "app_relay_tok_s_c1_ge_5000": {
            "value": syn.get("app_tok_s_e2e_c1"), "chatif": syn.get("chatif_tok_s_e2e_c1"),
            "pass": (syn.get("app_tok_s_e2e_c1") or 0) >= 5000},
    }
    print("\nSide-by-side ratios (same run):")
    for upstream, r in ratios.items():
        print(f"  [{upstream}]")
        for k, v in r.items():
            print(f"    {k:42s} {fmt(v, '.2f') if isinstance(v, float) else v}")
    print("Targets (synthetic upstream):")
    for k, t in targets.items():
        vals = ", ".join(f"{a}={fmt(b, '.2f') if isinstance(b, float) else b}"
                         for a, b in t.items() if a != "pass")
        print(f"  {'PASS' if t['pass'] else 'MISS'}  {k}: {vals}")
    print(f"total {total:.0f}s; load average before {load_before}, after {load_after}")

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "versions": _versions(),
        "loadavg_before": load_before, "loadavg_after": load_after,
        "mode": "quick" if args.quick else "default", "streams": streams, "plans": plans,
        "total_s": total,
        "cells": [{"path": p, "upstream": u, "concurrency": c,
                   **{k: v for k, v in cell.items()}} for (p, u, c), cell in cells.items()],
        "ratios": ratios, "targets": targets,
    }, indent=1, default=str))
    print(f"wrote {out}")
    return 0


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _versions() -> dict:
    out = {}
    for mod in ("gradio", "gradio_client", "huggingface_hub", "llama_cpp"):
        try:
            out[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            out[mod] = None
    return out


if __name__ == "__main__":
    sys.exit(main())
