"""Search benchmark: `Store.search_conversations` latency, SQLite FTS5 beside PostgreSQL tsvector.

    python bench/bench_search.py [--engine sqlite|postgres|both] [--pg-url URL]
                                 [--conversations 1000] [--messages 20] [--runs 300]

One user owns ``--conversations`` conversations of ``--messages`` messages each (user and
assistant turns of 15–80 words drawn from a Zipf-like vocabulary of 20,000 words, so some
words are in nearly every conversation and most in a few); 20 other users own as many again
with the same vocabulary (their words must cost nothing and never come back). The fill
goes through the store's own write transaction in batches (the triggers / GIN indexes of
migration 5 do their normal work), which is much faster than 20,000 `add_message` calls
and indexes the same way.

Queries, cycled: a rare word, a common word, two words, a prefix as typed ("configur"), a
title word, and a word nobody used. Median and p95 per kind and over all, from a warm
thread (the UI's search box calls it from Gradio's worker threads).

Prints a table and writes bench/results/search.json. Target: p95 <= 50 ms on both engines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import _common  # noqa: E402,F401  (repo on sys.path, offline env)

from chatui.store import Store  # noqa: E402
from chatui.store.base import new_id  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "search.json"
USER = "searcher"
OTHERS = 20
TARGET_MS = 50.0


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def vocabulary(rng: random.Random, n: int = 20000) -> tuple[list[str], list[float]]:
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(3, 10))))
    words = sorted(words)
    rng.shuffle(words)
    weights = [1.0 / (i + 1) for i in range(n)]          # Zipf, s = 1
    return words, weights


def fill(store: Store, conversations: int, messages: int, seed: int = 7) -> dict:
    rng = random.Random(seed)
    words, weights = vocabulary(rng)
    special = {"configuration": 0.05, "kubernetes": 0.01, "websocket": 0.002}

    def text(k: int) -> str:
        out = rng.choices(words, weights, k=k)
        for w, p in special.items():
            if rng.random() < p:
                out[rng.randrange(k)] = w
        return " ".join(out)

    t0 = time.perf_counter()
    now = time.time()
    for owner in [USER] + [f"other{i}" for i in range(OTHERS)]:
        n_conv = conversations if owner == USER else max(1, conversations // OTHERS)
        with store._write() as db:      # bench-only shortcut: one transaction per user
            db.execute("INSERT INTO users (id, kind, created_at, last_seen_at) "
                       "VALUES (?, 'anon', ?, ?) ON CONFLICT DO NOTHING", [owner, now, now])
            for c in range(n_conv):
                conv, at = new_id(), now - rng.random() * 90 * 86400
                title = " ".join(rng.choices(words[:2000], k=3)) + (" astronomy" if c % 97 == 0
                                                                    else "")
                db.execute("INSERT INTO conversations (id, user_id, title, model, system_prompt, "
                           "created_at, updated_at) VALUES (?, ?, ?, 'm1', '', ?, ?)",
                           [conv, owner, title, at, at])
                parent = None
                for m in range(messages):
                    mid = new_id()
                    role = "user" if m % 2 == 0 else "assistant"
                    db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, "
                               "content, finish_reason, created_at, updated_at) "
                               "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                               [mid, conv, parent, role,
                                text(rng.randint(15, 30) if role == "user" else
                                     rng.randint(40, 80)),
                                "stop" if role == "assistant" else None, at + m, at + m])
                    parent = mid
                db.execute("UPDATE conversations SET current_leaf_id = ? WHERE id = ?",
                           [parent, conv])
    if store.engine == "postgresql":
        # What autovacuum leaves behind on a live server: fresh statistics (the planner then
        # knows how common each word is) and a GIN pending list merged into the index.
        import psycopg

        with psycopg.connect(store.url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
    return {"fill_seconds": round(time.perf_counter() - t0, 2), "words": words}


def bench(target: str, conversations: int, messages: int, runs: int) -> dict:
    store = Store(target)
    filled = fill(store, conversations, messages)
    words = filled["words"]
    queries = {
        "rare word": lambda i: words[5000 + i % 500],
        "common word": lambda i: words[i % 5],
        "two words": lambda i: f"{words[i % 50]} {words[100 + i % 200]}",
        "prefix as typed": lambda i: "configur"[: 5 + i % 4],
        "title word": lambda i: "astronomy",
        "no match": lambda i: f"zzzq{i}",
    }
    times: dict[str, list[float]] = {k: [] for k in queries}
    hits: dict[str, list[int]] = {k: [] for k in queries}
    for name, q in queries.items():                   # warm caches and plans
        store.search_conversations(USER, q(0))
    for i in range(runs):
        for name, q in queries.items():
            a = time.perf_counter()
            found = store.search_conversations(USER, q(i), limit=20)
            times[name].append(time.perf_counter() - a)
            hits[name].append(len(found))
    other = store.search_conversations("other0", "astronomy", limit=200)
    mine = {r["id"] for r in store.search_conversations(USER, "astronomy", limit=200)}
    assert not mine & {r["id"] for r in other}, "isolation broken"
    store.close()
    ms = lambda v: round(v * 1000, 3)  # noqa: E731
    every = [t for v in times.values() for t in v]
    return {
        "conversations": conversations, "messages_per_conversation": messages,
        "other_users": OTHERS, "runs_per_query": runs, "fill_seconds": filled["fill_seconds"],
        "per_query": {k: {"median_ms": ms(statistics.median(v)), "p95_ms": ms(pct(v, 0.95)),
                          "results_median": statistics.median(hits[k])}
                      for k, v in times.items()},
        "all_median_ms": ms(statistics.median(every)), "all_p95_ms": ms(pct(every, 0.95)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", help="PostgreSQL server to use (default: a throwaway cluster)")
    ap.add_argument("--conversations", type=int, default=1000)
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--runs", type=int, default=300)
    args = ap.parse_args()
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    results: dict[str, dict] = {}
    machine = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
               "cpus": os.cpu_count(), "platform": platform.platform(),
               "loadavg_before": os.getloadavg()}
    run = lambda target: bench(target, args.conversations, args.messages, args.runs)  # noqa
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        if "sqlite" in engines:
            print("sqlite ...", flush=True)
            results["sqlite"] = run(str(Path(tmp) / "search.db"))
        if "postgres" in engines:
            print("postgres ...", flush=True)
            results["postgres"], machine["postgres"] = with_postgres(args, run)
    machine["loadavg_after"] = os.getloadavg()
    result = {"engines": results, "targets": {"p95_ms": TARGET_MS}, "machine": machine,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {RESULTS}")


def with_postgres(args, run: Callable[[str], dict]) -> tuple[dict, str]:
    import psycopg

    if args.pg_url:
        name = f"bench_search_{os.getpid()}"
        with psycopg.connect(args.pg_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
            version = conn.execute("SHOW server_version").fetchone()[0]
        return run(args.pg_url.rsplit("/", 1)[0] + "/" + name), version
    from tests.pgcluster import PgCluster

    with PgCluster(durable=True) as pg:
        with psycopg.connect(pg.url()) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return run(pg.create_database("bench_search")), f"{version} (throwaway cluster)"


def print_table(results: dict[str, dict]) -> None:
    names = list(results)
    print(f"\n{'search median / p95 ms':<36}" + "".join(f"{n:>22}" for n in names))
    print("-" * (36 + 22 * len(names)))
    first = next(iter(results.values()))
    for kind in first["per_query"]:
        cells = []
        for n in names:
            q = results[n]["per_query"][kind]
            cells.append(f"{q['median_ms']:.2f} / {q['p95_ms']:.2f} ({q['results_median']:g})")
        print(f"{kind:<36}" + "".join(f"{c:>22}" for c in cells))
    print(f"{'all queries':<36}" + "".join(
        f"{results[n]['all_median_ms']:.2f} / {results[n]['all_p95_ms']:.2f}".rjust(22)
        for n in names))
    print(f"(results per query in parentheses; {first['conversations']:,} conversations × "
          f"{first['messages_per_conversation']} messages, {first['other_users']} other users)")
    for n in names:
        ok = results[n]["all_p95_ms"] <= TARGET_MS
        print(f"{n}: p95 {results[n]['all_p95_ms']:.2f} ms {'OK' if ok else 'MISS'} "
              f"(target <= {TARGET_MS:g} ms)")


if __name__ == "__main__":
    main()
