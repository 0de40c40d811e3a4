"""The message tree: retry and edit create siblings, branches, current leaf, updates."""

from __future__ import annotations

import pytest

from chatui.store import LEAF, InvalidArgument, NotFound, Store

from .conftest import chat, raw_count

U = "alice"


def contents(msgs):
    return [m["content"] for m in msgs]


def test_append_follows_current_leaf(store: Store):
    conv, ids = chat(store, U, [("q1", "a1"), ("q2", "a2")])
    branch = store.branch(U, conv)
    assert contents(branch) == ["q1", "a1", "q2", "a2"]
    assert [m["parent_id"] for m in branch] == [None, *ids[:-1]]
    assert store.get_conversation(U, conv)["current_leaf_id"] == ids[-1]
    assert all(m["sibling_ids"] == [m["id"]] for m in branch)


def test_retry_creates_sibling_and_keeps_old_answer(store: Store):
    conv, (q, a1) = chat(store, U)
    a2 = store.add_message(U, conv, "assistant", "hello again", parent_id=q,
                           model="m2", params={"temperature": 0.9})
    assert contents(store.branch(U, conv)) == ["hi", "hello again"]
    sibs = store.siblings(U, a1)
    assert [s["id"] for s in sibs] == [a1, a2]
    assert contents(sibs) == ["hello", "hello again"]
    assert sibs[1]["model"] == "m2" and sibs[1]["params"] == {"temperature": 0.9}
    assert store.branch(U, conv)[-1]["sibling_ids"] == [a1, a2]
    # the old answer is still reachable
    assert contents(store.branch(U, conv, leaf_id=a1)) == ["hi", "hello"]


def test_edit_creates_sibling_user_message_even_at_root(store: Store):
    conv, (q1, a1, q2, a2) = chat(store, U, [("q1", "a1"), ("q2", "a2")])
    # edit the first (root) message: parent_id=None makes a new root
    root_edit = store.add_message(U, conv, "user", "q1 edited",
                                  parent_id=store.get_message(U, q1)["parent_id"])
    assert store.get_message(U, root_edit)["parent_id"] is None
    assert contents(store.branch(U, conv)) == ["q1 edited"]
    assert [m["id"] for m in store.siblings(U, q1)] == [q1, root_edit]
    # edit a later message
    q2_edit = store.add_message(U, conv, "user", "q2 edited", parent_id=a1)
    store.add_message(U, conv, "assistant", "a2'")
    assert contents(store.branch(U, conv)) == ["q1", "a1", "q2 edited", "a2'"]
    assert [m["id"] for m in store.siblings(U, q2)] == [q2, q2_edit]
    assert contents(store.branch(U, conv, leaf_id=a2)) == ["q1", "a1", "q2", "a2"]
    assert raw_count(store, "messages") == 7  # nothing overwritten


def test_branch_switching_descends_to_newest_leaf(store: Store):
    conv, (q1, a1, q2, a2) = chat(store, U, [("q1", "a1"), ("q2", "a2")])
    a1b = store.add_message(U, conv, "assistant", "a1b", parent_id=q1)
    q2b = store.add_message(U, conv, "user", "q2b")          # continues under a1b (current leaf)
    assert store.get_message(U, q2b)["parent_id"] == a1b
    # switch back to the first answer: its newest continuation is shown
    assert store.set_current_leaf(U, conv, a1) == a2
    assert contents(store.branch(U, conv)) == ["q1", "a1", "q2", "a2"]
    # without descend the leaf is exactly the message given
    assert store.set_current_leaf(U, conv, a1, descend=False) == a1
    assert contents(store.branch(U, conv)) == ["q1", "a1"]
    # appending now continues from a1
    q3 = store.add_message(U, conv, "user", "q3")
    assert store.get_message(U, q3)["parent_id"] == a1
    assert store.set_current_leaf(U, conv, a1b) == q2b


def test_parent_must_be_in_same_conversation(store: Store):
    conv1, ids1 = chat(store, U)
    conv2, _ = chat(store, U)
    with pytest.raises(NotFound):
        store.add_message(U, conv2, "user", "x", parent_id=ids1[-1])
    with pytest.raises(NotFound):
        store.set_current_leaf(U, conv2, ids1[-1])
    with pytest.raises(NotFound):
        store.branch(U, conv2, leaf_id=ids1[-1])


def test_empty_conversation_and_defaults(store: Store):
    conv = store.create_conversation(U, "New chat", model="m1", system_prompt="sys")
    assert store.branch(U, conv) == []
    c = store.get_conversation(U, conv)
    assert (c["title"], c["model"], c["system_prompt"], c["current_leaf_id"]) == \
        ("New chat", "m1", "sys", None)
    q = store.add_message(U, conv, "user", "hi", parent_id=LEAF)
    a = store.add_message(U, conv, "assistant", "")
    msg = store.get_message(U, a)
    assert msg["parent_id"] == q
    assert msg["model"] == "m1" and msg["system_prompt"] == "sys"   # copied from conversation
    assert msg["sources"] == [] and msg["params"] == {} and msg["feedback"] is None


def test_update_message_when_stream_finishes(store: Store):
    conv, (q, a) = chat(store, U, [("q", "")])
    srcs = [{"title": "Example", "url": "https://example.org", "snippet": "x"}]
    store.update_message(U, a, content="full answer", finish_reason="length",
                         prompt_tokens=12, completion_tokens=34, ttft=0.12, duration=1.5,
                         sources=srcs, backend="llamacpp")
    m = store.get_message(U, a)
    assert (m["content"], m["finish_reason"], m["prompt_tokens"], m["completion_tokens"]) == \
        ("full answer", "length", 12, 34)
    assert m["ttft"] == pytest.approx(0.12) and m["duration"] == pytest.approx(1.5)
    assert m["sources"] == srcs and m["backend"] == "llamacpp"
    assert m["updated_at"] >= m["created_at"]
    store.update_message(U, a, finish_reason="error", error="backend went away")
    m = store.get_message(U, a)
    assert (m["finish_reason"], m["error"], m["content"]) == ("error", "backend went away",
                                                              "full answer")
    with pytest.raises(InvalidArgument):
        store.update_message(U, a, finish_reason="done")
    with pytest.raises(InvalidArgument):
        store.update_message(U, a, role="user")
    with pytest.raises(InvalidArgument):
        store.add_message(U, conv, "system", "x")
    with pytest.raises(InvalidArgument):
        store.add_message(U, conv, "assistant", "x", colour="red")


def test_list_rename_delete(store: Store):
    convs = [chat(store, U)[0] for _ in range(3)]
    other, _ = chat(store, "bob")
    listed = store.list_conversations(U)
    assert [c["id"] for c in listed] == convs[::-1]                # newest first
    assert set(listed[0]) == {"id", "title", "model", "created_at", "updated_at"}
    assert other not in [c["id"] for c in listed]
    # a new message moves a conversation to the top
    store.add_message(U, convs[0], "user", "bump")
    assert store.list_conversations(U)[0]["id"] == convs[0]
    assert len(store.list_conversations(U, limit=2)) == 2
    store.rename_conversation(U, convs[1], "Renamed")
    assert store.get_conversation(U, convs[1])["title"] == "Renamed"
    # delete cascades to messages and feedback
    a = store.branch(U, convs[2])[-1]["id"]
    store.set_feedback(U, a, True)
    before_msgs = raw_count(store, "messages")
    store.delete_conversation(U, convs[2])
    with pytest.raises(NotFound):
        store.get_conversation(U, convs[2])
    assert raw_count(store, "messages") == before_msgs - 2
    assert raw_count(store, "feedback") == 0
    assert convs[2] not in [c["id"] for c in store.list_conversations(U)]


def test_ids_are_random_and_unguessable(store: Store):
    ids = {store.create_conversation(U) for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


def test_data_survives_reopen(db_url):
    with Store(db_url) as s:
        conv, ids = chat(s, U)
        s.set_feedback(U, ids[-1], False, reason="unhelpful")
    with Store(db_url) as s:
        assert contents(s.branch(U, conv)) == ["hi", "hello"]
        assert s.get_feedback(U, ids[-1])["reason"] == "unhelpful"
