"""Arena benchmark: time to first token of a battle's two answers vs two chat answers at once,
and the leaderboard fit on 10k / 100k battles.

    python bench/bench_arena.py [--samples 20] [--tokens 32] [--token-delay 0.02]
                                [--sizes 10000 100000] [--json PATH]

1. TTFT, through the real app (`python app.py`, gradio_client, as users reach it) over two
   wire-format upstreams (tests/wire.py, one per model, `--token-delay` s before each token):
   * battle: `/arena_chat` starting a new battle per sample; TTFT of side A and of side B
     (time from the request to the first output showing text on that side);
   * chat c=2: two `/chat` requests sent together (one per model, new conversations), the
     TTFT of each — what the same two answers cost without the arena.
   The claim: a battle's two answers cost no more TTFT than one answer at concurrency 2.
2. Leaderboard: `compute_leaderboard` on synthetic battles (bench_leaderboard's generator)
   of each size: fit alone, and fit + 200 bootstrap rounds (what the Feedback tab runs).

Prints a table and writes bench/results/arena.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from _common import timed_client  # first: the repo on sys.path, offline env
from bench_leaderboard import synthetic_battles, timed

from chatui.arena.leaderboard import compute_leaderboard
from tests.conftest import start_app, stop_process
from tests.wire import WireServer

RESULTS = Path(__file__).resolve().parent / "results" / "arena.json"
MODELS = ("bench-left", "bench-right")
CONFIG = """
models:
  - {{name: {a}, type: openai, endpoint_url: "{url_a}/v1"}}
  - {{name: {b}, type: openai, endpoint_url: "{url_b}/v1"}}
storage:
  db_path: {{db}}
arena:
  enabled: true
websearch:
  enabled: false
limits:
  messages_per_minute: 100000
  max_concurrent_per_user: 8
"""


def _text(content) -> str:
    if isinstance(content, list):
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return content or ""


def _first_text(outputs, pick) -> float | None:
    """When an output first showed assistant text in the chat `pick(output)` selects."""
    for out, at in zip(outputs, outputs.times):
        chat = pick(out)
        if any(m.get("role") == "assistant" and _text(m.get("content")).strip()
               for m in chat or []):
            return at
    return None


def token(i: int, kind: str) -> str:
    return f"bench-{kind}-{i:04d}-" + "x" * 32


def battle_sample(client, i: int) -> dict:
    t0 = time.perf_counter()
    job = client.submit(f"Question {i}?", "", token(i, "arena"), api_name="/arena_chat")
    job.result()
    outs = job.communicator.job.outputs          # a TimedList (see _common.timed_client)
    a = _first_text(outs, lambda o: o[0])
    b = _first_text(outs, lambda o: o[1])
    return {"ttft_a": a - t0, "ttft_b": b - t0, "done": outs.times[-1] - t0,
            "first_update": outs.times[0] - t0}


def chat_pair_sample(client, i: int) -> list[dict]:
    """Two /chat requests at once (one per model); the TTFT of each."""
    results: list[dict] = [{}, {}]

    def one(k: int) -> None:
        t0 = time.perf_counter()
        job = client.submit(f"Question {i}?", "", MODELS[k], "", 0.7, 0.9, 64, False,
                            token(i * 2 + k, "chat"), api_name="/chat")
        job.result()
        outs = job.communicator.job.outputs
        first = _first_text(outs, lambda o: o[0])
        results[k] = {"ttft": first - t0, "done": outs.times[-1] - t0,
                      "first_update": outs.times[0] - t0}

    threads = [threading.Thread(target=one, args=(k,)) for k in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    ttft: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench_arena_") as tmp, \
            WireServer() as wa, WireServer() as wb:
        for wire in (wa, wb):
            wire.config.tokens, wire.config.delay = args.tokens, args.token_delay
        proc, url = start_app(Path(tmp), CONFIG.format(a=MODELS[0], b=MODELS[1], url_a=wa.url,
                                                       url_b=wb.url))
        try:
            client = timed_client(url)
            for i in range(2):                                   # warm-up, not measured
                battle_sample(client, 10_000 + i)
                chat_pair_sample(client, 10_000 + i)
            battles, chats = [], []
            for i in range(args.samples):                        # interleaved: same load
                battles.append(battle_sample(client, i))
                chats += chat_pair_sample(client, i)
        finally:
            stop_process(proc)
    both = [s["ttft_a"] * 1e3 for s in battles] + [s["ttft_b"] * 1e3 for s in battles]
    slower = [max(s["ttft_a"], s["ttft_b"]) * 1e3 for s in battles]
    chat_ms = [s["ttft"] * 1e3 for s in chats]
    ttft = {
        "battle_side_ms_p50": pct(both, 0.5), "battle_side_ms_p95": pct(both, 0.95),
        "battle_slower_side_ms_p50": pct(slower, 0.5),
        "battle_slower_side_ms_p95": pct(slower, 0.95),
        "chat_c2_ms_p50": pct(chat_ms, 0.5), "chat_c2_ms_p95": pct(chat_ms, 0.95),
        # the first update (the question, before any token): the app's own share
        "battle_first_update_ms_p50": statistics.median(s["first_update"] * 1e3
                                                        for s in battles),
        "chat_c2_first_update_ms_p50": statistics.median(s["first_update"] * 1e3
                                                         for s in chats),
        "battle_done_s_p50": statistics.median(s["done"] for s in battles),
        "chat_c2_done_s_p50": statistics.median(s["done"] for s in chats),
        "samples": args.samples, "tokens": args.tokens, "token_delay_s": args.token_delay,
    }
    ttft["battle_no_slower_than_chat_c2_p50"] = (
        ttft["battle_side_ms_p50"] <= ttft["chat_c2_ms_p50"] * 1.1 + 5)

    fits = []
    for size in args.sizes:
        battles_syn, _ = synthetic_battles(size, 20, seed=size)
        fit_s, _ = timed(lambda: compute_leaderboard(battles_syn, bootstrap_rounds=0), 5)
        boot_s, _ = timed(lambda: compute_leaderboard(battles_syn, bootstrap_rounds=200,
                                                      seed=0), 3)
        fits.append({"battles": size, "models": 20, "fit_s": fit_s,
                     "fit_plus_200_bootstrap_s": boot_s})

    machine = {"python": platform.python_version(), "cpus": os.cpu_count(),
               "platform": platform.platform(), "loadavg_after": os.getloadavg()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"ttft": ttft, "leaderboard": fits, "machine": machine},
                                    indent=2) + "\n")
    print(f"TTFT over two wire upstreams ({args.tokens} tokens, {args.token_delay * 1e3:.0f} "
          f"ms per token), {args.samples} samples each, through the app:")
    print(f"{'':28s} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'battle, each side':28s} {ttft['battle_side_ms_p50']:>8.1f} "
          f"{ttft['battle_side_ms_p95']:>8.1f}")
    print(f"{'battle, slower side':28s} {ttft['battle_slower_side_ms_p50']:>8.1f} "
          f"{ttft['battle_slower_side_ms_p95']:>8.1f}")
    print(f"{'chat, 2 at once':28s} {ttft['chat_c2_ms_p50']:>8.1f} {ttft['chat_c2_ms_p95']:>8.1f}")
    print(f"first update (the question), p50: battle {ttft['battle_first_update_ms_p50']:.1f} ms,"
          f" chat {ttft['chat_c2_first_update_ms_p50']:.1f} ms")
    print(f"\n{'battles':>8} {'fit':>9} {'fit+200 boot':>13}")
    for f in fits:
        print(f"{f['battles']:>8} {f['fit_s'] * 1e3:>7.1f}ms "
              f"{f['fit_plus_200_bootstrap_s'] * 1e3:>11.0f}ms")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    sys.exit(main())
