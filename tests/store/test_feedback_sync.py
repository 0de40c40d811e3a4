"""Feedback push to a Hub dataset, tested WITHOUT network: a fake scheduler object with a
``.lock`` stands in for huggingface_hub.CommitScheduler (the Hub is unreachable here).
Several replicas: each writes and pushes its own folder, and `datasets` loads all of them as
one table."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest

from chatui.config import StorageSettings
from chatui.feedback_sync import FeedbackLog, feedback_record, start_feedback_sync
from chatui.replica import replica_id
from chatui.store import Store

from .conftest import chat


class FakeScheduler:
    """Records its constructor arguments; has the `.lock` CommitScheduler holds while pushing."""

    instances: list["FakeScheduler"] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.lock = threading.Lock()
        self.stopped = False
        FakeScheduler.instances.append(self)

    def stop(self):
        self.stopped = True


def settings(tmp_path, repo="me/chat-feedback"):
    return StorageSettings(db_path=str(tmp_path / "db" / "chat.db"), feedback_repo=repo,
                           feedback_every_minutes=2, feedback_folder=str(tmp_path / "fb"))


def lines(sink: FeedbackLog):
    return [json.loads(x) for x in sink.path.read_text().splitlines()] if sink.path.exists() else []


def test_no_repo_is_a_no_op(tmp_path):
    called = []
    assert start_feedback_sync(settings(tmp_path, repo=None),
                               scheduler_factory=lambda **kw: called.append(kw)) is None
    assert called == [] and not (tmp_path / "fb").exists()


def test_votes_are_appended_as_jsonl_for_the_scheduler(tmp_path):
    st = settings(tmp_path)
    sink = start_feedback_sync(st, token="hf_x", scheduler_factory=FakeScheduler,
                               replica="web-1")
    sched = sink.scheduler
    assert sched.kwargs["repo_id"] == "me/chat-feedback"
    assert sched.kwargs["repo_type"] == "dataset"
    assert sched.kwargs["every"] == 2 and sched.kwargs["token"] == "hf_x"
    assert sched.kwargs["private"] is True
    # this replica pushes only its own folder, into its own folder of the repo
    assert sink.path.parent == (tmp_path / "fb" / "web-1").resolve() == sched.kwargs["folder_path"]
    assert sched.kwargs["path_in_repo"] == "data/web-1"
    assert sched.kwargs["allow_patterns"] == ["*.jsonl"]
    assert sink.lock is sched.lock
    assert sink.path.name.startswith("feedback-") and sink.path.suffix == ".jsonl"

    with Store(st.db_path, on_feedback=sink) as store:
        conv, (q, a) = chat(store, "alice", params={"temperature": 0.5},
                            sources=[{"url": "https://e.org"}])
        store.set_feedback("alice", a, False, reason="incorrect", comment="no")
        store.set_feedback("alice", a, True)
        store.set_feedback("alice", a, None)
    rows = lines(sink)
    assert [(r["event"], r["label"]) for r in rows] == \
        [("vote", False), ("vote", True), ("unvote", False)]
    first = rows[0]
    assert (first["message_id"], first["conversation_id"], first["reason"], first["comment"],
            first["model"], first["replica"]) == (a, conv, "incorrect", "no", "m1", "web-1")
    # nested values are JSON text: one type per column whatever the vote had (see below)
    assert json.loads(first["params"]) == {"temperature": 0.5}
    assert json.loads(first["sources"]) == [{"url": "https://e.org"}]
    assert json.loads(first["prompt"]) == [{"role": "system", "content": "Be brief."},
                                           {"role": "user", "content": "hi"}]
    assert json.loads(first["completion"]) == [{"role": "assistant", "content": "hello"}]
    assert (rows[1]["reason"], rows[1]["comment"]) == ("", "")    # never null
    assert json.loads(rows[2]["prompt"]) == []
    assert first["time"].endswith("Z")
    assert "alice" not in sink.path.read_text()            # user id is hashed
    assert len(first["user"]) == 16
    # only JSONL is pushed (allow_patterns), and no SQLite/WAL file is anywhere near it
    assert [p.name for p in sink.folder.iterdir() if p.suffix == ".jsonl"] == [sink.path.name]
    assert not [p for p in (tmp_path / "fb").rglob("*") if ".db" in p.name]
    sink.stop()
    assert sched.stopped


def test_writes_happen_under_the_scheduler_lock(tmp_path):
    sink = FeedbackLog(tmp_path / "fb", scheduler=FakeScheduler())
    event = {"event": "vote", "label": True, "message_id": "m", "time": time.time()}
    sink.scheduler.lock.acquire()            # a commit is "in progress"
    t = threading.Thread(target=sink, args=(event,))
    t.start()
    time.sleep(0.3)
    assert lines(sink) == []                 # the writer waits for the lock
    sink.scheduler.lock.release()
    t.join(5)
    assert [r["message_id"] for r in lines(sink)] == ["m"]


def test_concurrent_votes_give_whole_lines(tmp_path):
    sink = FeedbackLog(tmp_path / "fb", scheduler=FakeScheduler())

    def burst(n):
        for i in range(100):
            sink({"event": "vote", "label": True, "message_id": f"{n}-{i}",
                  "comment": "x" * 5000, "time": 0})

    threads = [threading.Thread(target=burst, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [r["message_id"] for r in lines(sink)]       # every line parses
    assert sorted(ids) == sorted(f"{n}-{i}" for n in range(8) for i in range(100))


def test_refuses_a_folder_that_contains_the_database(tmp_path):
    st = StorageSettings(db_path=str(tmp_path / "data" / "chat.db"), feedback_repo="me/x",
                         feedback_folder=str(tmp_path / "data"))
    with pytest.raises(ValueError, match="must not contain the SQLite database"):
        start_feedback_sync(st, scheduler_factory=FakeScheduler)


def test_default_folder_is_beside_the_database(tmp_path):
    """In Docker/Spaces only /data persists: the pushed folder must live next to the DB."""
    storage = StorageSettings(db_path=str(tmp_path / "vol" / "chat.db"), feedback_repo="me/fb")
    sink = start_feedback_sync(storage, scheduler_factory=FakeScheduler)
    try:
        own = tmp_path / "vol" / "feedback" / replica_id()
        assert FakeScheduler.instances[-1].kwargs["folder_path"] in (own, str(own))
        assert sink.path.parent == own
    finally:
        sink.stop()


# -- several replicas -----------------------------------------------------------------------

def test_replica_id_names_this_process():
    assert replica_id({"CHATUI_REPLICA_ID": "chatui-2"}) == "chatui-2"
    assert replica_id({"CHATUI_REPLICA_ID": " a/b c:1 "}) == "a-b-c-1"   # safe in a path
    assert replica_id({"CHATUI_REPLICA_ID": "../.."}) not in ("", "..", ".")
    unset = replica_id({})
    assert unset.endswith(f"-{os.getpid()}") and len(unset) > len(str(os.getpid())) + 1


def test_a_second_live_writer_with_the_same_id_gets_its_own_folder(tmp_path):
    """One CHATUI_REPLICA_ID copied to every replica on a shared volume must not make two
    processes append to, and upload, the same folder."""
    first = FeedbackLog(tmp_path / "fb", replica="web")
    second = FeedbackLog(tmp_path / "fb", replica="web")
    try:
        assert first.folder.name == "web"
        assert second.folder.name == f"web-{os.getpid()}" and second.replica == second.folder.name
        assert first.path != second.path
    finally:
        first.stop()
        second.stop()
    again = FeedbackLog(tmp_path / "fb", replica="web")       # the first one's claim ended
    assert again.folder.name == "web"
    again.stop()


def test_postgres_storage_does_not_check_a_sqlite_file(tmp_path):
    st = StorageSettings(url="postgresql://u@db/chat", feedback_repo="me/x",
                         feedback_folder=str(tmp_path / "data"),
                         db_path=str(tmp_path / "data" / "chat.db"))
    sink = start_feedback_sync(st, scheduler_factory=FakeScheduler, replica="pg-1")
    assert sink.folder == (tmp_path / "data" / "pg-1").resolve()
    sink.stop()


def test_two_replicas_push_their_own_files_and_the_dataset_loads_as_one(db_url, tmp_path):
    """Two replicas (two Stores on one database, two sinks on one folder) vote at the same
    time. Each writes only its own files; `datasets` loads every replica's files as one table
    although one replica's file holds only sparse rows (no comment, no sources, an unvote),
    which with inferred null/struct types made the load fail."""
    datasets = pytest.importorskip("datasets")
    root = tmp_path / "fb"
    stores, sinks, expected = [], [], []
    for name in ("r1", "r2"):
        sink = FeedbackLog(root, scheduler=FakeScheduler(), replica=name)
        sinks.append(sink)
        stores.append(Store(db_url, on_feedback=sink))
    try:
        # r1 ("first" in file order) only ever sees bare votes and an unvote;
        # r2 sees votes with reasons, comments, sources and parameters.
        answers = {}
        for i, store in enumerate(stores):
            answers[i] = [chat(store, f"u{i}", params={"temperature": 0.1 * n} if i else {},
                               sources=[{"url": f"https://e.org/{n}", "title": "t"}] if i
                               else [])[1][1] for n in range(20)]
        barrier = threading.Barrier(2)

        def vote(i):
            barrier.wait()
            for n, a in enumerate(answers[i]):
                if i == 0:
                    stores[0].set_feedback("u0", a, True)
                    expected.append((a, "vote"))
                    if n == 0:
                        stores[0].set_feedback("u0", a, None)
                        expected.append((a, "unvote"))
                else:
                    stores[1].set_feedback("u1", a, n % 2 == 0, reason="other",
                                           comment=f"c{n}")
                    expected.append((a, "vote"))

        threads = [threading.Thread(target=vote, args=(i,)) for i in (0, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        for store in stores:
            store.close()
        for sink in sinks:
            sink.stop()
    # each replica wrote exactly one file, in its own folder (the one its scheduler pushes)
    files = sorted(root.rglob("*.jsonl"))
    assert [p.parent.name for p in files] == ["r1", "r2"]
    assert {s.path for s in sinks} == set(files)
    assert [len(lines(s)) for s in sinks] == [21, 20]

    ds = datasets.load_dataset("json", data_files=str(root / "**" / "*.jsonl"), split="train",
                               cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(zip(ds["message_id"], ds["event"])) == sorted(expected)
    assert sorted(set(ds["replica"])) == ["r1", "r2"]
    row = ds.filter(lambda r: r["comment"] == "c3")[0]
    assert (row["label"], row["reason"]) == (False, "other")
    assert json.loads(row["sources"]) == [{"url": "https://e.org/3", "title": "t"}]
    assert json.loads(row["prompt"])[-1] == {"role": "user", "content": "hi"}


def test_every_row_has_the_same_types_whatever_the_event_holds():
    """The rule the dataset load depends on: no null, no free-form object, in any row."""
    sparse = feedback_record({"event": "unvote", "label": None, "time": 0})
    full = feedback_record({"event": "vote", "label": True, "reason": "other", "comment": "x",
                            "model": "m", "backend": "openai", "finish_reason": "stop",
                            "params": {"seed": 3}, "sources": [{"url": "u"}],
                            "prompt": [{"role": "user", "content": "q"}],
                            "completion": [{"role": "assistant", "content": "a"}],
                            "user_id": "alice", "message_id": "m1", "conversation_id": "c1",
                            "time": 1.5}, replica="r")
    assert sparse.keys() == full.keys()
    assert {k: type(v) for k, v in sparse.items()} == {k: type(v) for k, v in full.items()}
    assert set(map(type, full.values())) == {str, bool}
