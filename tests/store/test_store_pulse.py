"""`Store.pulse`, on both engines: one transaction keeps a replica's answers and leases alive
(chatui/pulse.py calls it once per interval for the whole process)."""

from __future__ import annotations

import time

from chatui.store import Store

from .conftest import chat

U = "alice"


def generating(store: Store, user=U):
    conv = store.create_conversation(user, "t", model="m1")
    store.add_message(user, conv, "user", "question")
    return conv, store.add_message(user, conv, "assistant", "")       # no finish_reason yet


def test_one_call_saves_every_answer_and_renews_every_lease(store: Store):
    (_, a1), (_, a2) = generating(store), generating(store)
    lease = store.acquire_generation(U, 2, ttl=1.0)
    time.sleep(0.6)
    assert store.pulse([(U, a1, "first so far"), (U, a2, None)], [(lease, 1.0)]) == set()
    assert store.get_message(U, a1)["content"] == "first so far"
    assert store.get_message(U, a2)["content"] == ""                   # heartbeat only
    time.sleep(0.6)                                  # past the first ttl: renewed, still held
    assert store.active_generations(U) == 1
    assert store.interrupt_stale(None, older_than=1.0) == []           # both beat 0.6 s ago…
    time.sleep(0.6)
    assert sorted(store.interrupt_stale(None, older_than=1.0)) == sorted([a1, a2])  # …not now


def test_finished_gone_and_foreign_answers_are_reported_and_left_alone(store: Store):
    conv, live = generating(store)
    _, (_, done) = chat(store, U, finish_reason="stop")
    _, bobs = generating(store, "bob")
    stopped = store.pulse([(U, live, "text"), (U, done, "overwrite?"), (U, bobs, "pwned"),
                           (U, "0" * 32, "x")], [])
    assert stopped == {done, bobs, "0" * 32}
    assert store.get_message(U, live)["content"] == "text"
    assert store.get_message(U, done)["content"] == "hello"
    assert store.get_message("bob", bobs)["content"] == ""
