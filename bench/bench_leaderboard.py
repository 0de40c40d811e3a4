"""Arena leaderboard benchmark: fit and bootstrap time on synthetic battles.

    python bench/bench_leaderboard.py [--models 20] [--rounds 1000] [--repeats 5]
                                      [--sizes 10000 100000] [--json PATH]

Synthetic battles (Chatbot Arena layout: dicts with model_a, model_b, winner; 10% ties) drawn
from known ratings spread over 600 points, seeded. For each size:

1. fit: `compute_leaderboard(battles, bootstrap_rounds=0)` end to end from the list of dicts
   (aggregation into pair counts + Newton fit), and the two parts alone; median of N repeats.
2. bootstrap: the same with ``--rounds`` resampling rounds (95% intervals), median of N repeats.
3. accuracy, on a tie-free draw of the same size (ties shrink the gaps): largest
   |fitted − true| rating after shifting the truth to the fitted mean, and whether the fitted
   order is the true order. Mean width of the 95% intervals (from the run with ties).

Prints a table and writes bench/results/leaderboard.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import _common  # noqa: E402,F401  (repo on sys.path, offline env)
import numpy as np  # noqa: E402

from chatui.arena.leaderboard import aggregate, compute_leaderboard, fit_bt  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "leaderboard.json"


def synthetic_battles(n: int, models: int, seed: int, tie_prob: float = 0.1):
    rng = np.random.default_rng(seed)
    names = [f"model-{i:03d}" for i in range(models)]
    true = np.linspace(700, 1300, models)
    a = rng.integers(0, models, n)
    b = (a + rng.integers(1, models, n)) % models
    p_a = 1.0 / (1.0 + 10 ** ((true[b] - true[a]) / 400))
    u, t = rng.random(n), rng.random(n)
    winner = np.where(t < tie_prob, np.where(t < tie_prob / 2, "tie", "tie (bothbad)"),
                      np.where(u < p_a, "model_a", "model_b"))
    battles = [{"model_a": names[i], "model_b": names[j], "winner": str(w)}
               for i, j, w in zip(a.tolist(), b.tolist(), winner.tolist())]
    return battles, dict(zip(names, true.tolist()))


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args()

    results = []
    for size in args.sizes:
        battles, true = synthetic_battles(size, args.models, seed=size)
        agg_s, counts = timed(lambda: aggregate(battles), args.repeats)
        newton_s, _ = timed(lambda: fit_bt(counts.score), args.repeats)
        fit_s, lb = timed(lambda: compute_leaderboard(battles, bootstrap_rounds=0),
                          args.repeats)
        boot_s, lb_boot = timed(
            lambda: compute_leaderboard(battles, bootstrap_rounds=args.rounds, seed=0),
            max(1, args.repeats // 2))
        # Accuracy on a tie-free draw of the same size: ties (half a win each way) shrink the
        # gaps between ratings, so with ties the truth is not what the model should recover.
        clean, _ = synthetic_battles(size, args.models, seed=size + 1, tie_prob=0.0)
        fitted = compute_leaderboard(clean, bootstrap_rounds=0).ratings
        # Compare gaps, not levels: shift the truth to the fitted mean.
        shift = statistics.mean(fitted.values()) - statistics.mean(true.values())
        max_err = max(abs(fitted[m] - (true[m] + shift)) for m in true)
        order_ok = sorted(fitted, key=fitted.get) == sorted(true, key=true.get)
        width = statistics.mean(r.upper - r.lower for r in lb_boot.rows)
        results.append({"battles": size, "models": args.models, "aggregate_s": agg_s,
                        "newton_fit_s": newton_s, "fit_s": fit_s,
                        "bootstrap_rounds": args.rounds, "fit_plus_bootstrap_s": boot_s,
                        "bootstrap_only_s": boot_s - fit_s, "max_abs_error": max_err,
                        "order_matches_truth": order_ok, "mean_ci_width": width})

    machine = {"python": platform.python_version(), "numpy": np.__version__,
               "cpus": os.cpu_count(), "platform": platform.platform(),
               "loadavg_after": os.getloadavg()}
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"results": results, "machine": machine,
                                     "repeats": args.repeats}, indent=2) + "\n")

    print(f"{'battles':>8} {'models':>6} {'aggregate':>10} {'newton':>8} {'fit':>8} "
          f"{'+boot':>8} {'rounds':>6} {'max err':>8} {'order':>5} {'CI width':>8}")
    for r in results:
        print(f"{r['battles']:>8} {r['models']:>6} {r['aggregate_s'] * 1e3:>8.1f}ms "
              f"{r['newton_fit_s'] * 1e3:>6.1f}ms {r['fit_s'] * 1e3:>6.1f}ms "
              f"{r['fit_plus_bootstrap_s'] * 1e3:>6.0f}ms {r['bootstrap_rounds']:>6} "
              f"{r['max_abs_error']:>8.1f} {'ok' if r['order_matches_truth'] else 'NO':>5} "
              f"{r['mean_ci_width']:>8.1f}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
