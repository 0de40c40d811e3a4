"""Store benchmark: concurrent feedback writes and history load time, SQLite beside PostgreSQL.

    python bench/bench_store.py [--engine sqlite|postgres|both] [--pg-url URL]
                                [--threads 32] [--votes 8000] [--conversations 1000]

``--engine both`` (the default) runs the same workload on a SQLite file and on PostgreSQL, side
by side. Without ``--pg-url`` a throwaway PostgreSQL cluster is started in a temp dir (Debian's
``postgresql`` package, as the tests do) with its durable defaults (fsync on); with it, each
part uses a fresh database created on that server (the URL's user needs CREATEDB).

1. Feedback writes/s with N concurrent writer threads (each vote a real `set_feedback`:
   ownership check, context snapshot, upsert, commit), on conversations of 3 turns with
   every answer voted on. Lost writes are counted by re-reading
   the rows with an independent connection (sqlite3 / psycopg).
2. History load for a user with 1,000 conversations (plus 50 other users' noise):
   `list_conversations` + `branch` of one conversation (10 messages), as the UI does when a
   session opens. Median and p95 over repeated runs, half of them from a fresh thread (SQLite:
   a new thread-local reader; PostgreSQL: a pooled connection).

Prints a table and writes bench/results/store.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import _common  # noqa: E402,F401  (repo on sys.path, offline env)

from chatui.store import Store  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "store.json"


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def count_rows(target: str, table: str) -> int:
    """Rows seen by an independent connection (not the Store's)."""
    if target.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(target) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    conn = sqlite3.connect(target)
    try:
        return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        conn.close()


def bench_writes(target: str, threads: int, votes: int) -> dict:
    # as many pooled connections as writers, as a replica sized for its threads would have
    store = Store(target, pool_size=threads)
    per = votes // threads
    work = []
    for t in range(threads):
        user = f"user{t}"
        answers = []
        # realistic shape: conversations of 3 turns, every answer voted on
        for i in range(per):
            if i % 3 == 0:
                conv = store.create_conversation(user, "bench", model="m1",
                                                 system_prompt="Be brief.")
            store.add_message(user, conv, "user", f"question {i} " * 5)
            answers.append(store.add_message(user, conv, "assistant", f"answer {i} " * 20,
                                             params={"temperature": 0.7}))
        work.append((user, answers))
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads + 1)

    def writer(user, answers):
        try:
            barrier.wait()
            for i, a in enumerate(answers):
                store.set_feedback(user, a, i % 2 == 0, reason=None if i % 2 == 0 else "other")
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    ts = [threading.Thread(target=writer, args=w) for w in work]
    for t in ts:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in ts:
        t.join()
    elapsed = time.perf_counter() - start
    store.close()
    rows = count_rows(target, "feedback")
    expected = per * threads
    return {"threads": threads, "votes": expected, "seconds": round(elapsed, 3),
            "writes_per_s": round(expected / elapsed), "rows": rows, "lost": expected - rows,
            "errors": len(errors), "first_error": repr(errors[0]) if errors else None}


def bench_history(target: str, conversations: int, runs: int = 200) -> dict:
    store = Store(target)
    user = "heavy-user"
    t0 = time.perf_counter()
    last = None
    for c in range(conversations):
        conv = store.create_conversation(user, f"Conversation {c}", model="m1")
        for turn in range(5):
            store.add_message(user, conv, "user", f"question {turn} about topic {c}")
            store.add_message(user, conv, "assistant", f"answer {turn} " * 40)
        last = conv
    for u in range(50):
        store.create_conversation(f"other{u}", "noise")
    fill_s = time.perf_counter() - t0
    lists, branches, totals = [], [], []
    for i in range(runs):
        # a fresh thread each run: includes opening its reader connection, like a new worker
        out = {}

        def load():
            a = time.perf_counter()
            convs = store.list_conversations(user)
            b = time.perf_counter()
            msgs = store.branch(user, convs[0]["id"])
            c = time.perf_counter()
            out.update(list=b - a, branch=c - b, total=c - a, n=len(convs), m=len(msgs))

        if i % 2 == 0:
            th = threading.Thread(target=load)
            th.start()
            th.join()
        else:
            load()  # warm thread-local connection
        assert out["n"] == min(200, conversations) and out["m"] == 10
        lists.append(out["list"])
        branches.append(out["branch"])
        totals.append(out["total"])
    all_convs = store.list_conversations(user, limit=conversations)
    assert len(all_convs) == conversations and all_convs[0]["id"] == last
    a = time.perf_counter()
    store.list_conversations(user, limit=conversations)
    full_ms = (time.perf_counter() - a) * 1000
    store.close()
    ms = lambda v: round(v * 1000, 3)  # noqa: E731
    return {"conversations": conversations, "messages_per_conversation": 10, "runs": runs,
            "fill_seconds": round(fill_s, 2),
            "list_ms_median": ms(statistics.median(lists)), "list_ms_p95": ms(pct(lists, 0.95)),
            "branch_ms_median": ms(statistics.median(branches)),
            "branch_ms_p95": ms(pct(branches, 0.95)),
            "total_ms_median": ms(statistics.median(totals)),
            "total_ms_p95": ms(pct(totals, 0.95)),
            "list_all_1000_ms": round(full_ms, 3)}


def run_engine(name: str, new_target: Callable[[str], str], args) -> dict:
    print(f"{name}: writes ...", flush=True)
    writes = bench_writes(new_target("writes"), args.threads, args.votes)
    print(f"{name}: history ...", flush=True)
    history = bench_history(new_target("history"), args.conversations)
    return {"writes": writes, "history": history}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--pg-url", help="PostgreSQL server to use (default: a throwaway cluster)")
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--votes", type=int, default=8000)
    ap.add_argument("--conversations", type=int, default=1000)
    args = ap.parse_args()
    engines = ["sqlite", "postgres"] if args.engine == "both" else [args.engine]
    results: dict[str, dict] = {}
    machine = {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
               "cpus": os.cpu_count(), "platform": platform.platform(),
               "loadavg_before": os.getloadavg()}
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        if "sqlite" in engines:
            results["sqlite"] = run_engine("sqlite", lambda part: str(Path(tmp) / f"{part}.db"),
                                           args)
        if "postgres" in engines:
            results["postgres"], machine["postgres"] = bench_postgres(args)
    machine["loadavg_after"] = os.getloadavg()
    result = {"engines": results,
              "targets": {"writes_per_s": 2000, "lost": 0, "history_ms": 50},
              "machine": machine,
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print_table(results)
    print(f"\nwrote {RESULTS}")


def bench_postgres(args) -> tuple[dict, str]:
    import psycopg

    if args.pg_url:
        def new_target(part: str) -> str:
            name = f"bench_store_{part}_{os.getpid()}"
            with psycopg.connect(args.pg_url, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
                conn.execute(f'CREATE DATABASE "{name}"')
            return args.pg_url.rsplit("/", 1)[0] + "/" + name

        with psycopg.connect(args.pg_url) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return run_engine("postgres", new_target, args), version
    from tests.pgcluster import PgCluster

    with PgCluster(durable=True) as pg:
        with psycopg.connect(pg.url()) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
        return run_engine("postgres", lambda part: pg.create_database(f"bench_{part}"),
                          args), f"{version} (throwaway cluster, fsync on)"


def print_table(results: dict[str, dict]) -> None:
    names = list(results)
    print(f"\n{'metric':<44}" + "".join(f"{n:>18}" for n in names) + "  target")
    print("-" * (52 + 18 * len(names)))

    def row(label, fmt, target=""):
        print(f"{label:<44}" + "".join(f"{fmt(results[n]):>18}" for n in names) + f"  {target}")

    w = next(iter(results.values()))["writes"]
    row(f"feedback writes/s ({w['threads']} threads, {w['votes']} votes)",
        lambda r: f"{r['writes']['writes_per_s']:,}", ">= 2,000")
    row("lost writes / errors", lambda r: f"{r['writes']['lost']} / {r['writes']['errors']}", "0")
    row("list_conversations (1,000 convs) med/p95 ms",
        lambda r: f"{r['history']['list_ms_median']:.2f} / {r['history']['list_ms_p95']:.2f}")
    row("branch (10 msgs) median/p95 ms",
        lambda r: f"{r['history']['branch_ms_median']:.2f} / {r['history']['branch_ms_p95']:.2f}")
    row("history load total median/p95 ms",
        lambda r: f"{r['history']['total_ms_median']:.2f} / {r['history']['total_ms_p95']:.2f}",
        "<= 50 ms")
    row("list all 1,000 conversations ms", lambda r: f"{r['history']['list_all_1000_ms']:.2f}")
    for n in names:
        r = results[n]
        ok_w = r["writes"]["writes_per_s"] >= 2000 and not r["writes"]["lost"] \
            and not r["writes"]["errors"]
        ok_h = r["history"]["total_ms_p95"] <= 50
        print(f"{n}: writes {'OK' if ok_w else 'MISS'}, history {'OK' if ok_h else 'MISS'}")


if __name__ == "__main__":
    main()
