"""State shared by replicas, on both engines: per-user leases that expire, the per-minute rate,
and answers whose writer died being seen as interrupted (with their partial text)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from chatui.store import INTERRUPTED_ERROR, InvalidArgument, NotFound, Store
from tests.store.race import race, two_replicas

from .conftest import chat

ROOT = Path(__file__).resolve().parents[2]
U = "alice"
# Short lifetimes, yet long enough that a few store calls on a busy shared box fit in one.
T = 1.0


# -- answers at once: leases ---------------------------------------------------------------

def test_leases_limit_release_and_expire(store: Store):
    a = store.acquire_generation(U, 2, ttl=30)
    b = store.acquire_generation(U, 2, ttl=T)
    assert a and b and a != b
    assert store.acquire_generation(U, 2, ttl=30) is None          # both slots taken
    assert store.acquire_generation("bob", 2, ttl=30)               # per user
    assert store.active_generations(U) == 2
    store.release_generation(a)
    store.release_generation(a)                                     # idempotent
    c = store.acquire_generation(U, 2, ttl=30)
    assert c and store.acquire_generation(U, 2, ttl=30) is None
    time.sleep(T * 1.3)                                             # b expired: its slot is free
    assert store.active_generations(U) == 1
    assert store.renew_generation(b, 30) is False                   # too late for b
    d = store.acquire_generation(U, 2, ttl=30)
    assert d and store.active_generations(U) == 2


def test_renew_keeps_a_lease_alive_past_its_first_ttl(store: Store):
    lease = store.acquire_generation(U, 1, ttl=T)
    for _ in range(3):                                              # 1.2 T in all
        time.sleep(T * 0.4)
        assert store.renew_generation(lease, T) is True
    assert store.acquire_generation(U, 1, ttl=30) is None           # still held
    with pytest.raises(InvalidArgument):
        store.acquire_generation(U, 1, ttl=0)


def test_two_replicas_never_exceed_the_limit_together(db_url):
    """16 threads on two Store instances (two replicas) race for 3 slots of one user."""
    held, peak, got = [0], [0], [0]
    lock = threading.Lock()
    with two_replicas(db_url) as stores:
        def worker(i):
            s = stores[i % 2]
            for _ in range(5):
                lease = s.acquire_generation(U, 3, ttl=30)
                if lease is None:
                    continue
                with lock:
                    held[0] += 1
                    got[0] += 1
                    peak[0] = max(peak[0], held[0])
                time.sleep(0.01)
                with lock:
                    held[0] -= 1
                s.release_generation(lease)

        errors = race(16, worker)
        assert not errors, errors[:3]
        assert 1 <= peak[0] <= 3 and got[0] >= 3
        assert stores[0].active_generations(U) == stores[1].active_generations(U) == 0


HOLDER = """
import sys
from chatui.store import Store
s = Store(sys.argv[1])
assert s.acquire_generation("alice", 2, ttl=float(sys.argv[2]))
assert s.acquire_generation("alice", 2, ttl=float(sys.argv[2]))
print("held", flush=True)
sys.stdin.read()
"""


def test_a_killed_replica_never_locks_the_user_out(db_url):
    Store(db_url).close()
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, db_url, str(T * 3)], cwd=ROOT,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held", proc.stderr.read()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        with Store(db_url) as s:
            assert s.acquire_generation(U, 2, ttl=30) is None         # the dead one's leases
            deadline = time.monotonic() + 10
            lease = None
            while lease is None and time.monotonic() < deadline:
                time.sleep(0.1)
                lease = s.acquire_generation(U, 2, ttl=30)
            assert lease is not None
    finally:
        if proc.poll() is None:
            proc.kill()


# -- messages per minute ---------------------------------------------------------------------

def test_rate_counts_accepted_messages_in_a_sliding_window(store: Store):
    assert [store.record_message_and_check_rate(U, 3) for _ in range(4)] == \
        [True, True, True, False]
    assert store.record_message_and_check_rate("bob", 3) is True    # per user
    wait = store.rate_retry_after(U, 3)
    assert 55 < wait <= 60
    assert store.rate_retry_after("bob", 3) == 0
    # a short window: refused messages were not counted, so one slot frees per expiry
    assert [store.record_message_and_check_rate("carol", 2, window=T) for _ in range(3)] == \
        [True, True, False]
    time.sleep(T * 1.3)
    assert store.rate_retry_after("carol", 2, window=T) == 0
    assert [store.record_message_and_check_rate("carol", 2, window=T) for _ in range(3)] == \
        [True, True, False]


def test_rate_holds_across_two_replicas(db_url):
    stores = [Store(db_url), Store(db_url)]
    results: list[bool] = []
    start = threading.Barrier(12)

    def send(i):
        start.wait()
        results.append(stores[i % 2].record_message_and_check_rate(U, 5))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for s in stores:
        s.close()
    assert sorted(results) == [False] * 7 + [True] * 5


# -- answers whose writer died ---------------------------------------------------------------

def generating(store: Store, user=U):
    conv = store.create_conversation(user, "t", model="m1")
    q = store.add_message(user, conv, "user", "question")
    a = store.add_message(user, conv, "assistant", "")               # no finish_reason yet
    return conv, q, a


def test_stale_answer_becomes_interrupted_keeping_its_text(store: Store):
    conv, q, a = generating(store)
    assert store.interrupt_stale(conv, older_than=30) == []           # fresh: left alone
    assert store.heartbeat(U, a, content="partial ans") is True
    done_conv, (_, done) = chat(store, U, finish_reason="stop")
    time.sleep(T * 1.3)
    assert store.interrupt_stale(conv, older_than=T) == [a]
    m = store.get_message(U, a)
    assert (m["finish_reason"], m["error"], m["content"]) == \
        ("error", INTERRUPTED_ERROR, "partial ans")
    assert store.branch(U, conv)[-1]["finish_reason"] == "error"
    assert store.heartbeat(U, a) is False                             # the writer learns it
    assert store.interrupt_stale(None, older_than=T) == []            # finished ones untouched
    assert store.get_message(U, done)["finish_reason"] == "stop"


def test_heartbeats_and_updates_keep_an_answer_alive(store: Store):
    conv, q, a = generating(store)
    other_conv, _, b = generating(store, "bob")
    time.sleep(T * 1.3)
    store.update_message(U, a, content="streaming…")                 # counts as a heartbeat
    assert store.interrupt_stale(None, older_than=T) == [b]           # sweep: only the silent one
    assert store.get_message(U, a)["finish_reason"] is None
    time.sleep(T * 1.3)
    assert store.interrupt_stale(other_conv, older_than=T) == []      # limited to one conversation
    assert store.get_message(U, a)["finish_reason"] is None
    store.update_message(U, a, content="done", finish_reason="stop")
    time.sleep(0.1)
    assert store.interrupt_stale(conv, older_than=0.05) == []         # finished: never stale
    with pytest.raises(NotFound):
        store.heartbeat("bob", a)


def test_an_answer_reopened_to_continue_it_is_generating_again(store: Store):
    conv, q, a = generating(store)
    time.sleep(T * 1.3)
    store.update_message(U, a, content="cut", finish_reason="length")
    assert store.interrupt_stale(conv, older_than=T) == []            # finished
    store.update_message(U, a, finish_reason=None, error=None)        # "continue" starts
    assert store.interrupt_stale(conv, older_than=T) == []            # fresh heartbeat
    assert store.heartbeat(U, a) is True
    time.sleep(T * 1.3)
    assert store.interrupt_stale(conv, older_than=T) == [a]           # then silent: stale
    assert store.get_message(U, a)["content"] == "cut"


def test_checking_a_conversation_takes_no_write_lock(db_path):
    """Readers call interrupt_stale before every conversation they show: with nothing stale
    it must not queue behind writers (SQLite: one write lock for the whole file)."""
    with Store(db_path, busy_timeout=5) as s:
        conv, q, a = generating(s)
        s.update_message(U, a, content="done", finish_reason="stop")
        blocker = sqlite3.connect(str(db_path), isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")                          # another writer holds it
        try:
            started = time.monotonic()
            assert s.interrupt_stale(conv, older_than=T) == []
            assert time.monotonic() - started < 2                   # not busy_timeout (5 s)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()


WRITER = """
import sys, time
from chatui.store import Store
from tests.store.race import race, two_replicas
s = Store(sys.argv[1])
c = s.create_conversation("alice", "t", model="m")
s.add_message("alice", c, "user", "tell me")
a = s.add_message("alice", c, "assistant", "")
s.heartbeat("alice", a, content="Once upon a")
print(c, a, flush=True)
while True:
    time.sleep(0.05)
    s.heartbeat("alice", a)
"""


def test_answer_of_a_killed_replica_is_seen_as_interrupted(db_url):
    Store(db_url).close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        conv, a = proc.stdout.readline().split()
        with Store(db_url) as s:
            time.sleep(T * 1.3)
            assert s.interrupt_stale(conv, older_than=T) == []          # alive: heartbeating
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(10)
            time.sleep(T * 1.3)
            assert s.interrupt_stale(conv, older_than=T) == [a]
            last = s.branch("alice", conv)[-1]
            assert (last["id"], last["content"], last["finish_reason"], last["error"]) == \
                (a, "Once upon a", "error", INTERRUPTED_ERROR)
    finally:
        if proc.poll() is None:
            proc.kill()
