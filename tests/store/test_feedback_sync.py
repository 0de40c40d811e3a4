"""Feedback push to a Hub dataset, tested WITHOUT network: a fake scheduler object with a
``.lock`` stands in for huggingface_hub.CommitScheduler (the Hub is unreachable here)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from chatui.config import StorageSettings
from chatui.feedback_sync import FeedbackLog, start_feedback_sync
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
    sink = start_feedback_sync(st, token="hf_x", scheduler_factory=FakeScheduler)
    sched = sink.scheduler
    assert sched.kwargs["repo_id"] == "me/chat-feedback"
    assert sched.kwargs["repo_type"] == "dataset"
    assert sched.kwargs["every"] == 2 and sched.kwargs["token"] == "hf_x"
    assert sched.kwargs["private"] is True
    assert sink.path.parent == (tmp_path / "fb").resolve() == sched.kwargs["folder_path"]
    assert sink.path.name.startswith("feedback-") and sink.path.suffix == ".jsonl"

    with Store(st.db_path, on_feedback=sink) as store:
        conv, (q, a) = chat(store, "alice", params={"temperature": 0.5},
                            sources=[{"url": "https://e.org"}])
        store.set_feedback("alice", a, False, reason="incorrect", comment="no")
        store.set_feedback("alice", a, True)
        store.set_feedback("alice", a, None)
    rows = lines(sink)
    assert [(r["event"], r["label"]) for r in rows] == \
        [("vote", False), ("vote", True), ("unvote", None)]
    first = rows[0]
    assert (first["message_id"], first["conversation_id"], first["reason"], first["comment"],
            first["model"], first["params"], first["sources"]) == \
        (a, conv, "incorrect", "no", "m1", {"temperature": 0.5}, [{"url": "https://e.org"}])
    assert first["prompt"] == [{"role": "system", "content": "Be brief."},
                               {"role": "user", "content": "hi"}]
    assert first["completion"] == [{"role": "assistant", "content": "hello"}]
    assert first["time"].endswith("Z")
    assert "alice" not in sink.path.read_text()            # user id is hashed
    assert len(first["user"]) == 16
    # only JSONL lives in the pushed folder, never the SQLite/WAL files
    assert {p.suffix for p in sink.path.parent.iterdir()} == {".jsonl"}
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
        assert FakeScheduler.instances[-1].kwargs["folder_path"] in (
            tmp_path / "vol" / "feedback", str(tmp_path / "vol" / "feedback"))
        assert sink.path.parent == tmp_path / "vol" / "feedback"
    finally:
        sink.stop()
