"""Who set a conversation's title (schema v8 `title_source`), and what that means when the
first question is edited: the first words and a model-written title follow the question on
screen, a title the user chose stays. History over the real store, on both engines, and
read back by a second Store (a reload)."""

from __future__ import annotations

import pytest

from chatui.chat import TurnResult
from chatui.history import History, title_from
from chatui.store import InvalidArgument, Store

from .conftest import raw_execute

U = "alice"
FIRST = "Count from one to five please"
EDITED = "Count from one to ten instead"


def first_exchange(history: History) -> tuple[str, str]:
    t = history.start(U, None, FIRST, "m", "")
    history.finish(U, t, TurnResult(text="1, 2, 3, 4, 5", finish_reason="stop"), "m", "llamacpp")
    return t.conversation_id, t.user_message_id


def edit_first(history: History, conv: str, question: str) -> None:
    t = history.edit(U, conv, question, EDITED)
    history.finish(U, t, TurnResult(text="1 … 10", finish_reason="stop"), "m", "llamacpp")


def titles_after_reload(db_url) -> dict:
    with Store(db_url) as again:
        return {c["id"]: c["title"] for c in again.list_conversations(U)}


def test_a_model_title_follows_an_edit_of_the_first_question(store: Store, db_url):
    history = History(store)
    conv, question = first_exchange(history)
    assert store.get_conversation(U, conv)["title_source"] is None  # first words, as created
    store.rename_conversation(U, conv, "Counting to five", by="model")
    assert store.get_conversation(U, conv)["title_source"] == "model"
    edit_first(history, conv, question)
    c = store.get_conversation(U, conv)
    assert (c["title"], c["title_source"]) == (title_from(EDITED), "auto")
    assert titles_after_reload(db_url) == {conv: title_from(EDITED)}
    # back to the first version: the title follows again
    history.switch_answer(U, conv, store.branch(U, conv)[0]["id"], -1)
    assert store.get_conversation(U, conv)["title"] == title_from(FIRST)


def test_a_title_the_user_chose_stays_through_edits(store: Store, db_url):
    history = History(store)
    conv, question = first_exchange(history)
    history.rename(U, conv, "My counting chat")
    assert store.get_conversation(U, conv)["title_source"] == "user"
    edit_first(history, conv, question)
    assert titles_after_reload(db_url) == {conv: "My counting chat"}
    # even a rename to the very first words is the user's choice
    other, q2 = first_exchange(history)
    history.rename(U, other, title_from(FIRST))
    edit_first(history, other, q2)
    assert store.get_conversation(U, other)["title"] == title_from(FIRST)


def test_a_title_from_before_v8_follows_only_as_the_first_words(store: Store, db_url):
    history = History(store)
    conv, question = first_exchange(history)
    renamed, q2 = first_exchange(history)
    # as an older database has them: no source recorded
    raw_execute(db_url, "UPDATE conversations SET title = ?, title_source = NULL WHERE id = ?",
                ["Old custom title", renamed])
    edit_first(history, conv, question)
    edit_first(history, renamed, q2)
    assert titles_after_reload(db_url) == {conv: title_from(EDITED),
                                           renamed: "Old custom title"}


def test_title_source_is_checked(store: Store, db_url):
    conv = store.create_conversation(U, "t")
    with pytest.raises(InvalidArgument):
        store.rename_conversation(U, conv, "x", by="robot")
    with pytest.raises(Exception, match="(?i)check"):  # the column's CHECK, on both engines
        raw_execute(db_url, "UPDATE conversations SET title_source = 'robot' WHERE id = ?",
                    [conv])
    assert store.get_conversation(U, conv)["title_source"] is None
