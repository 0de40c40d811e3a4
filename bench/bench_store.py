"""Store benchmark: concurrent feedback writes and history load time.

    python bench/bench_store.py [--threads 32] [--votes 8000] [--conversations 1000]

1. Feedback writes/s with N concurrent writer threads (each vote a real `set_feedback`:
   ownership check, context snapshot, upsert, commit), on conversations of 3 turns with
   every answer voted on. Lost writes are counted by re-reading
   the rows with an independent sqlite3 connection.
2. History load for a user with 1,000 conversations (plus 50 other users' noise):
   `list_conversations` + `branch` of one conversation (10 messages), as the UI does when a
   session opens. Median and p95 over repeated runs, each from a fresh thread-local reader.

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
from pathlib import Path

import _common  # noqa: E402,F401  (repo on sys.path, offline env)

from chatui.store import Store  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "store.json"


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def bench_writes(folder: Path, threads: int, votes: int) -> dict:
    store = Store(folder / "writes.db")
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
    conn = sqlite3.connect(str(folder / "writes.db"))
    rows = conn.execute("SELECT COUNT(*) FROM feedback").fetchone()[0]
    conn.close()
    expected = per * threads
    return {"threads": threads, "votes": expected, "seconds": round(elapsed, 3),
            "writes_per_s": round(expected / elapsed), "rows": rows, "lost": expected - rows,
            "errors": len(errors), "first_error": repr(errors[0]) if errors else None}


def bench_history(folder: Path, conversations: int, runs: int = 200) -> dict:
    store = Store(folder / "history.db")
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
        assert out["n"] == 200 and out["m"] == 10
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=32)
    ap.add_argument("--votes", type=int, default=8000)
    ap.add_argument("--conversations", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        folder = Path(tmp)
        writes = bench_writes(folder, args.threads, args.votes)
        history = bench_history(folder, args.conversations)
    result = {"writes": writes, "history": history,
              "targets": {"writes_per_s": 2000, "lost": 0, "history_ms": 50},
              "machine": {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version,
                          "cpus": os.cpu_count(), "platform": platform.platform()},
              "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    ok_w = writes["writes_per_s"] >= 2000 and writes["lost"] == 0 and writes["errors"] == 0
    ok_h = history["total_ms_p95"] <= 50
    print(f"{'metric':<44}{'value':>14}  target")
    print("-" * 70)
    print(f"{'feedback writes/s (%d threads, %d votes)' % (writes['threads'], writes['votes']):<44}"
          f"{writes['writes_per_s']:>14,}  >= 2,000  {'OK' if ok_w else 'MISS'}")
    print(f"{'lost writes / errors':<44}{writes['lost']:>9} / {writes['errors']:<2}  0")
    print(f"{'list_conversations (1,000 convs) median/p95':<44}"
          f"{history['list_ms_median']:>6.2f} / {history['list_ms_p95']:<5.2f} ms")
    print(f"{'branch (10 msgs) median/p95':<44}"
          f"{history['branch_ms_median']:>6.2f} / {history['branch_ms_p95']:<5.2f} ms")
    print(f"{'history load total median/p95':<44}"
          f"{history['total_ms_median']:>6.2f} / {history['total_ms_p95']:<5.2f} ms  <= 50 ms  "
          f"{'OK' if ok_h else 'MISS'}")
    print(f"{'list all 1,000 conversations':<44}{history['list_all_1000_ms']:>11.2f} ms")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
