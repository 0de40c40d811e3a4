"""A user can never read, change or branch another user's conversation: NotFound, as if missing."""

from __future__ import annotations

import pytest

from chatui.store import NotFound, Store

from .conftest import chat

A, B = "alice", "bob"


@pytest.fixture
def world(store: Store):
    conv, (q, a) = chat(store, A)
    store.set_feedback(A, a, True, comment="mine")
    chat(store, B)  # bob exists and has his own data
    return store, conv, q, a


CALLS = {
    "get_conversation": lambda s, c, q, a: s.get_conversation(B, c),
    "rename_conversation": lambda s, c, q, a: s.rename_conversation(B, c, "pwned"),
    "update_conversation": lambda s, c, q, a: s.update_conversation(B, c, system_prompt="pwned"),
    "delete_conversation": lambda s, c, q, a: s.delete_conversation(B, c),
    "add_message": lambda s, c, q, a: s.add_message(B, c, "user", "pwned"),
    "add_message_parent": lambda s, c, q, a: s.add_message(B, c, "assistant", "x", parent_id=q),
    "update_message": lambda s, c, q, a: s.update_message(B, a, content="pwned"),
    "get_message": lambda s, c, q, a: s.get_message(B, a),
    "branch": lambda s, c, q, a: s.branch(B, c),
    "branch_leaf": lambda s, c, q, a: s.branch(B, c, leaf_id=a),
    "siblings": lambda s, c, q, a: s.siblings(B, a),
    "set_current_leaf": lambda s, c, q, a: s.set_current_leaf(B, c, q),
    "set_feedback": lambda s, c, q, a: s.set_feedback(B, a, False),
    "remove_feedback": lambda s, c, q, a: s.set_feedback(B, a, None),
    "get_feedback": lambda s, c, q, a: s.get_feedback(B, a),
    "heartbeat": lambda s, c, q, a: s.heartbeat(B, a, content="pwned"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_other_user_gets_not_found_and_nothing_changes(world, name):
    store, conv, q, a = world
    before = (store.get_conversation(A, conv), store.branch(A, conv), store.get_feedback(A, a))
    with pytest.raises(NotFound) as err:
        CALLS[name](store, conv, q, a)
    after = (store.get_conversation(A, conv), store.branch(A, conv), store.get_feedback(A, a))
    assert after == before
    assert conv not in [c["id"] for c in store.list_conversations(B)]
    # the message is indistinguishable from a missing id
    assert "not found" in str(err.value)
    assert A not in str(err.value) and B not in str(err.value)


def test_error_for_foreign_id_equals_error_for_missing_id(world):
    store, conv, q, a = world
    with pytest.raises(NotFound) as foreign:
        store.get_message(B, a)
    with pytest.raises(NotFound) as missing:
        store.get_message(B, "0" * 32)
    assert type(foreign.value) is type(missing.value)
    assert str(foreign.value).replace(a, "ID") == str(missing.value).replace("0" * 32, "ID")


def test_owner_still_can(world):
    store, conv, q, a = world
    store.rename_conversation(A, conv, "ok")
    assert store.get_conversation(A, conv)["title"] == "ok"
    assert store.get_feedback(A, a)["comment"] == "mine"
