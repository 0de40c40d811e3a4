"""Votes: set/change/remove, validation, the context snapshot, dashboard queries, sink hook."""

from __future__ import annotations

import pytest

from chatui.store import InvalidArgument, Store

from .conftest import chat, raw_count

U = "alice"


def test_vote_change_and_remove(store: Store):
    conv, (q, a) = chat(store, U)
    assert store.get_feedback(U, a) is None
    store.set_feedback(U, a, True)
    assert store.get_feedback(U, a)["label"] is True
    store.set_feedback(U, a, False, reason="incorrect", comment="  wrong year  ")
    fb = store.get_feedback(U, a)
    assert (fb["label"], fb["reason"], fb["comment"]) == (False, "incorrect", "wrong year")
    assert raw_count(store, "feedback") == 1          # changed, not duplicated
    assert store.branch(U, conv)[-1]["feedback"] == {"label": False, "reason": "incorrect",
                                                     "comment": "wrong year"}
    store.set_feedback(U, a, None)
    assert store.get_feedback(U, a) is None
    assert raw_count(store, "feedback") == 0
    store.set_feedback(U, a, None)                          # removing twice is fine


def test_vote_validation(store: Store):
    conv, (q, a) = chat(store, U)
    with pytest.raises(InvalidArgument):
        store.set_feedback(U, q, True)                      # user messages cannot be rated
    with pytest.raises(InvalidArgument):
        store.set_feedback(U, a, False, reason="rude")
    with pytest.raises(InvalidArgument):
        store.set_feedback(U, a, 1)
    assert raw_count(store, "feedback") == 0


def test_snapshot_is_taken_at_vote_time(store: Store):
    srcs = [{"title": "T", "url": "https://e.org/1"}]
    conv, (q1, a1, q2, a2) = chat(store, U, [("q1", "a1"), ("q2", "a2")], model="m1",
                                  system_prompt="Be brief.", params={"temperature": 0.3},
                                  sources=srcs, backend="llamacpp")
    store.set_feedback(U, a2, True)
    ctx = store.get_feedback(U, a2)["context"]
    assert ctx["prompt"] == [{"role": "system", "content": "Be brief."},
                             {"role": "user", "content": "q1"},
                             {"role": "assistant", "content": "a1"},
                             {"role": "user", "content": "q2"}]
    assert ctx["completion"] == [{"role": "assistant", "content": "a2"}]
    assert (ctx["model"], ctx["backend"], ctx["params"], ctx["sources"]) == \
        ("m1", "llamacpp", {"temperature": 0.3}, srcs)
    # a later change to the message does not rewrite what was judged
    store.update_message(U, a2, content="changed")
    assert store.get_feedback(U, a2)["context"]["completion"][0]["content"] == "a2"


def test_no_system_message_when_prompt_empty(store: Store):
    conv, (q, a) = chat(store, U, system_prompt="")
    store.set_feedback(U, a, True)
    assert store.get_feedback(U, a)["context"]["prompt"] == [{"role": "user", "content": "hi"}]


def test_stats_and_comments(store: Store):
    _, (_, a1) = chat(store, U, model="m1")
    _, (_, a2) = chat(store, U, model="m1")
    _, (_, a3) = chat(store, "bob", model="m2")
    store.set_feedback(U, a1, True)
    store.set_feedback(U, a2, False, reason="unsafe", comment="not ok")
    store.set_feedback("bob", a3, False)
    stats = store.feedback_stats()
    days = {r["day"] for r in stats}
    assert len(days) == 1
    assert {(r["model"], r["up"], r["down"]) for r in stats} == {("m1", 1, 1), ("m2", 0, 1)}
    assert store.feedback_stats(since="2999-01-01") == []
    comments = store.latest_comments()
    assert len(comments) == 1
    c = comments[0]
    assert (c["message_id"], c["label"], c["reason"], c["comment"], c["prompt"], c["completion"]) \
        == (a2, False, "unsafe", "not ok", "hi", "hello")


def test_on_feedback_hook_receives_votes_and_cannot_break_voting(db_url):
    events = []
    with Store(db_url, on_feedback=events.append) as s:
        _, (q, a) = chat(s, U)
        s.set_feedback(U, a, False, reason="other", comment="meh")
        s.set_feedback(U, a, None)
        s.set_feedback(U, a, None)                           # nothing to remove: no event
    assert [(e["event"], e["label"]) for e in events] == [("vote", False), ("unvote", None)]
    e = events[0]
    assert (e["message_id"], e["user_id"], e["reason"], e["comment"], e["model"]) == \
        (a, U, "other", "meh", "m1")
    assert e["prompt"][-1] == {"role": "user", "content": "hi"}

    def broken(event):
        raise RuntimeError("sink down")

    with Store(db_url, on_feedback=broken) as s:
        s.set_feedback(U, a, True)                           # logged, not raised
        assert s.get_feedback(U, a)["label"] is True
