"""`Store.begin_turn`, on both engines: a message, its answer begun and the per-user limits in
one transaction (what the app does when a user sends), refusing with nothing written."""

from __future__ import annotations

import pytest

from chatui.store import LimitReached, NotFound, Store
from tests.store.race import race, two_replicas

from .conftest import chat, raw_count

U = "alice"
LIMITS = dict(max_turns=100, max_concurrent=4, per_minute=100)
TABLES = ("conversations", "messages", "rate_events", "generation_leases")


def counts(store: Store) -> dict:
    return {t: raw_count(store, t) for t in TABLES}


def test_new_conversation_holds_the_message_its_generating_answer_a_lease_and_a_count(
        store: Store):
    t = store.begin_turn(U, None, "Hello there", title="Hello there", model="m1",
                         system_prompt="Be brief.", backend="openai", **LIMITS)
    assert t["new_conversation"] is True and t["branch"] == []
    conv = store.get_conversation(U, t["conversation_id"])
    assert (conv["title"], conv["model"], conv["system_prompt"]) == \
        ("Hello there", "m1", "Be brief.")
    assert conv["current_leaf_id"] == t["assistant_message_id"]
    question, answer = store.branch(U, t["conversation_id"])
    assert (question["id"], question["role"], question["content"], question["parent_id"]) == \
        (t["user_message_id"], "user", "Hello there", None)
    assert (answer["id"], answer["role"], answer["content"], answer["parent_id"]) == \
        (t["assistant_message_id"], "assistant", "", question["id"])
    assert answer["finish_reason"] is None                       # being written
    assert (answer["model"], answer["backend"], answer["system_prompt"]) == \
        ("m1", "openai", "Be brief.")
    assert store.heartbeat(U, answer["id"], "partial") is True   # a live answer
    assert t["lease_id"] and store.active_generations(U) == 1
    assert raw_count(store, "rate_events") == 1
    assert [c["id"] for c in store.list_conversations(U)] == [t["conversation_id"]]
    store.release_generation(t["lease_id"])
    assert store.active_generations(U) == 0


def test_existing_conversation_continues_the_branch_and_returns_what_came_before(
        store: Store):
    conv, ids = chat(store, U, (("q1", "a1"), ("q2", "a2")))
    before = store.branch(U, conv)
    t = store.begin_turn(U, conv, "q3", model="m2", system_prompt="new", backend="tgi",
                         **LIMITS)
    assert t["new_conversation"] is False and t["conversation_id"] == conv
    assert t["branch"] == before                      # the same dicts branch() gives
    after = store.branch(U, conv)
    assert [m["id"] for m in after] == ids + [t["user_message_id"], t["assistant_message_id"]]
    assert after[-2]["parent_id"] == ids[-1]
    c = store.get_conversation(U, conv)
    assert (c["model"], c["system_prompt"], c["current_leaf_id"]) == \
        ("m2", "new", t["assistant_message_id"])
    assert after[-1]["system_prompt"] == "new" and after[-1]["model"] == "m2"


def test_without_limits_nothing_is_counted_or_leased(store: Store):
    t = store.begin_turn(U, None, "hi")
    assert t["lease_id"] is None
    assert raw_count(store, "rate_events") == raw_count(store, "generation_leases") == 0
    assert len(store.branch(U, t["conversation_id"])) == 2


def test_each_limit_refuses_in_order_and_writes_nothing(store: Store):
    conv, _ = chat(store, U, (("q1", "a1"),))                    # 2 messages
    before = counts(store)
    with pytest.raises(LimitReached) as e:
        store.begin_turn(U, conv, "q2", max_turns=2, max_concurrent=0, per_minute=0)
    assert (e.value.kind, e.value.limit) == ("turns", 2)         # checked first
    assert counts(store) == before

    held = store.acquire_generation(U, 5, ttl=30)
    before = counts(store)
    with pytest.raises(LimitReached) as e:
        store.begin_turn(U, conv, "q2", max_turns=10, max_concurrent=1, per_minute=0)
    assert (e.value.kind, e.value.limit, e.value.busy) == ("concurrent", 1, 1)
    assert counts(store) == before
    store.release_generation(held)

    for i in range(2):
        t = store.begin_turn(U, None, f"m{i}", max_concurrent=10, per_minute=2)
        store.release_generation(t["lease_id"])
    before = counts(store)
    with pytest.raises(LimitReached) as e:
        store.begin_turn(U, conv, "q2", max_turns=10, max_concurrent=10, per_minute=2)
    assert (e.value.kind, e.value.limit) == ("rate", 2)
    assert 0 < e.value.retry_after <= 60
    assert counts(store) == before                               # no lease kept either
    assert store.begin_turn("bob", None, "hi", per_minute=2)     # per user


def test_someone_elses_conversation_is_not_found_and_nothing_is_written(store: Store):
    conv, _ = chat(store, "bob")
    before = counts(store)
    for conv_id in (conv, "0" * 32, 42):
        with pytest.raises(NotFound):
            store.begin_turn(U, conv_id, "hi", **LIMITS)
    assert counts(store) == before


def test_two_replicas_sending_at_once_never_exceed_the_answers_at_once(db_url):
    """12 threads on two Store instances (two replicas) send for one user with 3 slots: at
    most 3 accepted, each a complete turn; the others refused whole."""
    accepted, refused = [], []
    with two_replicas(db_url) as stores:
        def worker(i):
            try:
                t = stores[i % 2].begin_turn(U, None, f"q{i}", max_concurrent=3,
                                             per_minute=100)
                accepted.append(t)
            except LimitReached as e:
                refused.append(e.kind)

        errors = race(12, worker)
        assert not errors, errors[:3]
        assert len(accepted) == 3 and refused == ["concurrent"] * 9
        assert stores[0].active_generations(U) == 3
        assert raw_count(db_url, "messages") == 6 and raw_count(db_url, "rate_events") == 3
        for t in accepted:
            assert [m["role"] for m in stores[1].branch(U, t["conversation_id"])] == \
                ["user", "assistant"]
