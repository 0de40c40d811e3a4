"""Concurrency and crash safety: 32 writer threads, concurrent readers, kill -9 of a writer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from chatui.store import Store

from .conftest import chat, raw_count, raw_execute

ROOT = Path(__file__).resolve().parents[2]
THREADS = 32
VOTES_PER_THREAD = 40


def test_32_threads_write_feedback_without_loss_or_lock_errors(store: Store):
    # each thread owns a user with one conversation of VOTES_PER_THREAD answers
    work = []
    for t in range(THREADS):
        user = f"user{t}"
        conv, ids = chat(store, user, [(f"q{i}", f"a{i}") for i in range(VOTES_PER_THREAD)])
        work.append((user, conv, ids[1::2]))
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def writer(user, conv, answers):
        try:
            start.wait()
            for i, a in enumerate(answers):
                store.set_feedback(user, a, i % 3 != 0, comment=f"c{i}")
                if i % 10 == 0:                       # reads interleaved with writes
                    assert store.get_feedback(user, a)["comment"] == f"c{i}"
                    store.list_conversations(user)
                    store.add_message(user, conv, "user", f"more {i}")
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=w) for w in work]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    expected = THREADS * VOTES_PER_THREAD
    assert raw_count(store, "feedback") == expected
    assert len(list(store.iter_feedback())) == expected
    extra = THREADS * len(range(0, VOTES_PER_THREAD, 10))
    assert raw_count(store, "messages") == THREADS * VOTES_PER_THREAD * 2 + extra
    for user, conv, answers in work:
        labels = [store.get_feedback(user, a)["label"] for a in answers]
        assert labels == [i % 3 != 0 for i in range(len(answers))]


def test_two_stores_in_two_processes_share_the_database(db_url):
    """A second process (another replica, the export CLI) writing while this one writes."""
    code = (
        "import sys; from chatui.store import Store\n"
        "s = Store(sys.argv[1])\n"
        "c = s.create_conversation('p2', 'x', model='m')\n"
        "for i in range(200):\n"
        "    s.add_message('p2', c, 'user', str(i))\n"
        "print('done')\n"
    )
    with Store(db_url) as s:
        proc = subprocess.Popen([sys.executable, "-c", code, db_url], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        conv = s.create_conversation("p1", "y")
        for i in range(200):
            s.add_message("p1", conv, "user", str(i))
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.strip() == "done", err
        assert len(s.branch("p1", conv)) == 200
    assert raw_count(db_url, "messages") == 400


def test_kill_9_of_writer_process_loses_no_committed_vote(db_url):
    Store(db_url).close()                       # create + migrate before the child starts
    proc = subprocess.Popen([sys.executable, "-m", "tests.store._vote_writer", db_url],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    reported: list[str] = []
    deadline = time.monotonic() + 90          # PostgreSQL on a busy 2-core box: ~50 ms a vote
    try:
        while len(reported) < 300 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            reported.append(line.decode().strip())
        # kill while it is writing (mid-transaction with high probability)
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # lines completed before the kill were committed too; a torn last line is ignored
    for line in rest.decode().split("\n")[:-1]:
        reported.append(line.strip())
    assert len(reported) >= 300, err.decode()[-2000:]

    if not db_url.startswith("postgresql://"):
        assert raw_execute(db_url, "PRAGMA integrity_check")[0][0] == "ok"
    voted = {r[0] for r in raw_execute(db_url, "SELECT message_id FROM feedback")}
    missing = [m for m in reported if m not in voted]
    assert not missing, f"{len(missing)} committed votes lost"
    with Store(db_url) as s:                   # and the store opens and works afterwards
        assert s.get_feedback("writer", reported[-1]) is not None
        assert len(list(s.iter_feedback())) >= len(reported)
