"""history.py over a real SQLite store: turns, retry/edit branches, undo, votes on reload."""

import pytest

from chatui.chat import TurnResult
from chatui.history import History, title_from
from chatui.store import NotFound, Store

U, OTHER = "anon:u", "anon:other"


@pytest.fixture
def history(tmp_path):
    store = Store(tmp_path / "h.db")
    yield History(store)
    store.close()


def answer(h: History, turn, text: str, finish="stop"):
    return h.finish(U, turn, TurnResult(text=text, finish_reason=finish, ttft=0.1, duration=1.0,
                                        params={"temperature": 0.5}), "m", "llamacpp")


def test_turns_build_the_prompt_from_the_stored_branch(history):
    t1 = history.start(U, None, "first question", "m", "sys")
    assert t1.new_conversation and t1.prompt_history == []
    answer(history, t1, "first answer")
    t2 = history.start(U, t1.conversation_id, "second question", "m", "sys")
    assert t2.conversation_id == t1.conversation_id and not t2.new_conversation
    assert t2.prompt_history == [{"role": "user", "content": "first question"},
                                 {"role": "assistant", "content": "first answer"}]
    assert history.conversations(U) == [("first question", t1.conversation_id)]


def test_retry_adds_a_sibling_answer_and_edit_a_sibling_question(history):
    t1 = history.start(U, None, "q1", "m", "")
    a1 = answer(history, t1, "a1")
    t2 = history.start(U, t1.conversation_id, "q2", "m", "")
    a2 = answer(history, t2, "a2")
    # retry q2: same user message, the model sees only q1/a1 before it
    r = history.retry(U, t1.conversation_id, t2.user_message_id)
    assert r.user_message_id == t2.user_message_id
    assert r.prompt_history == [{"role": "user", "content": "q1"},
                                {"role": "assistant", "content": "a1"}]
    a2b = answer(history, r, "a2 again")
    siblings = history.store.siblings(U, a2b)
    assert {s["id"] for s in siblings} == {a2, a2b}
    # edit q2: a new user message beside q2, the old branch stays in the tree
    e = history.edit(U, t1.conversation_id, t2.user_message_id, "q2 edited")
    assert e.user_message_id != t2.user_message_id and e.prompt_history == r.prompt_history
    answer(history, e, "a2 for the edit")
    shown, ids, votes = history.load(U, t1.conversation_id)
    assert [m["content"] for m in shown] == ["q1", "a1", "q2 edited", "a2 for the edit"]
    assert ids[:2] == [t1.user_message_id, a1] and len(ids) == len(shown)
    assert len(votes) == sum(m["role"] == "assistant" for m in shown)
    assert history.store.get_message(U, a2)["content"] == "a2"  # nothing overwritten


def test_editing_the_first_message_makes_a_new_root(history):
    t1 = history.start(U, None, "hello", "m", "")
    answer(history, t1, "hi")
    e = history.edit(U, t1.conversation_id, t1.user_message_id, "hello again")
    assert e.prompt_history == []
    answer(history, e, "hi again")
    shown, _, _ = history.load(U, t1.conversation_id)
    assert [m["content"] for m in shown] == ["hello again", "hi again"]


def test_undo_moves_the_branch_back_without_deleting(history):
    t1 = history.start(U, None, "q1", "m", "")
    answer(history, t1, "a1")
    t2 = history.start(U, t1.conversation_id, "q2", "m", "")
    answer(history, t2, "a2")
    assert history.undo(U, t1.conversation_id) == "q2"  # the stored text goes back in the box
    shown, _, _ = history.load(U, t1.conversation_id)
    assert [m["content"] for m in shown] == ["q1", "a1"]
    assert history.store.get_message(U, t2.user_message_id)["content"] == "q2"
    # undoing the first message empties the chat: the conversation goes, not to come back
    assert history.undo(U, t1.conversation_id) == "q1"
    assert not history.exists(U, t1.conversation_id) and history.conversations(U) == []


def test_undo_of_a_rated_first_message_keeps_the_conversation(history):
    t = history.start(U, None, "q", "m", "")
    history.rate(U, answer(history, t, "a"), True)
    assert history.undo(U, t.conversation_id) == "q"
    assert history.exists(U, t.conversation_id)  # votes are data the user chose to give


def test_stopped_and_failed_answers_keep_their_text_and_show_it(history):
    t = history.start(U, None, "q", "m", "")
    answer(history, t, "partial", finish="stopped")
    t2 = history.start(U, t.conversation_id, "q2", "m", "")
    history.finish(U, t2, TurnResult(text="half", finish_reason="error", error="server died"),
                   "m", "openai")
    shown, _, _ = history.load(U, t.conversation_id)
    contents = [m["content"] for m in shown]
    assert contents[1].startswith("partial") and "Stopped" in contents[1]
    assert contents[3] == "half" and "server died" in contents[4]
    # the model is re-sent the partial text, not the marks
    t3 = history.start(U, t.conversation_id, "q3", "m", "")
    assert [m["content"] for m in t3.prompt_history] == ["q", "partial", "q2", "half"]


def test_votes_show_on_reload_and_other_users_get_not_found(history):
    t = history.start(U, None, "q", "m", "")
    a = answer(history, t, "a")
    history.rate(U, a, False, "incorrect", "  wrong  ")
    _, _, votes = history.load(U, t.conversation_id)
    assert votes == ["Dislike"]  # one entry per assistant message, as Gradio wants
    assert history.store.get_feedback(U, a)["comment"] == "wrong"
    for call in (lambda: history.load(OTHER, t.conversation_id),
                 lambda: history.retry(OTHER, t.conversation_id, t.user_message_id),
                 lambda: history.rate(OTHER, a, True),
                 lambda: history.rename(OTHER, t.conversation_id, "x")):
        with pytest.raises(NotFound):
            call()
    # a chat naming someone else's conversation starts a new one instead of writing into it
    t_other = history.start(OTHER, t.conversation_id, "sneaky", "m", "")
    assert t_other.conversation_id != t.conversation_id and t_other.new_conversation


def test_title_from_first_message():
    assert title_from("  hello   world \n") == "hello world"
    long = title_from("x" * 200)
    assert len(long) == 60 and long.endswith("…")


def test_switching_between_sibling_answers(history):
    t = history.start(U, None, "q", "m", "")
    a1 = answer(history, t, "first")
    r = history.retry(U, t.conversation_id, t.user_message_id)
    a2 = answer(history, r, "second")
    v = history.versions(U, t.conversation_id)
    assert (v.answer_pos, v.answer_count, v.question_count) == (2, 2, 0)
    assert history.switch_answer(U, t.conversation_id, a2, +1) is None  # already the last
    assert history.switch_answer(U, t.conversation_id, a2, -1) == a1
    shown, ids, _ = history.load(U, t.conversation_id)
    assert [m["content"] for m in shown] == ["q", "first"] and ids[-1] == a1
    assert history.versions(U, t.conversation_id).answer_pos == 1
    with pytest.raises(NotFound):
        history.switch_answer(OTHER, t.conversation_id, a1, +1)


def test_edited_questions_can_be_switched_and_the_title_follows(history):
    t = history.start(U, None, "first version", "m", "")
    answer(history, t, "answer one")
    e = history.edit(U, t.conversation_id, t.user_message_id, "second version")
    assert e.message == "second version" and e.shown == []
    answer(history, e, "answer two")
    assert history.conversations(U) == [("second version", t.conversation_id)]
    v = history.versions(U, t.conversation_id)
    assert (v.question_id, v.question_pos, v.question_count) == (e.user_message_id, 2, 2)
    # back to the first version: its own answer comes with it, and the title follows
    assert history.switch_answer(U, t.conversation_id, e.user_message_id, -1) == \
        t.user_message_id
    shown, _, _ = history.load(U, t.conversation_id)
    assert [m["content"] for m in shown] == ["first version", "answer one"]
    assert history.conversations(U) == [("first version", t.conversation_id)]
    # a title the user chose is never replaced
    history.rename(U, t.conversation_id, "My title")
    history.switch_answer(U, t.conversation_id, t.user_message_id, +1)
    assert history.conversations(U) == [("My title", t.conversation_id)]


def test_continue_appends_to_the_cut_answer(history):
    t = history.start(U, None, "tell a story", "m", "")
    a = answer(history, t, "Once upon a", finish="length")
    turn, stored = history.continue_turn(U, t.conversation_id, a)
    assert stored["content"] == "Once upon a" and turn.message == "tell a story"
    assert turn.prompt_history == []
    history.finish_continuation(U, stored, TurnResult(text=" time.", finish_reason="stop",
                                                      completion_tokens=3, duration=0.5))
    msg = history.store.get_message(U, a)
    assert msg["content"] == "Once upon a time." and msg["finish_reason"] == "stop"
    assert msg["meta"]["continued"] == 1
    assert [m["id"] for m in history.store.branch(U, t.conversation_id)] == [
        t.user_message_id, a]  # one answer, not two


def test_steps_and_notices_are_shown_again_on_reload(history):
    t = history.start(U, None, "q", "m", "")
    step = {"role": "assistant", "content": "query: x",
            "metadata": {"title": "Searching the web", "status": "done"}}
    history.finish(U, t, TurnResult(text="a", finish_reason="stop", steps=[step],
                                    notices=["Web search is unavailable right now."]),
                   "m", "llamacpp")
    shown, ids, votes = history.load(U, t.conversation_id)
    titles = [(m.get("metadata") or {}).get("title") for m in shown]
    assert titles[1] == "Searching the web" and shown[2]["content"] == "a"
    assert any("Web search is unavailable" in (t or "") for t in titles)
    assert len(ids) == len(shown) and len(votes) == len(shown) - 1


def test_an_answer_is_stored_while_written_and_shown_interrupted_if_its_writer_dies(tmp_path):
    """A replica that dies mid-answer leaves a generating answer; the next reader sees it as
    interrupted, with the text saved so far (issue 10)."""
    import time

    store = Store(tmp_path / "i.db")
    h = History(store, stale_after=0.3)
    t = h.start(U, None, "q", "m", "")
    msg = h.begin_answer(U, t, "m", "llamacpp")
    assert store.get_message(U, msg)["finish_reason"] is None  # being written
    store.heartbeat(U, msg, "half an ans")
    shown, _, _ = h.load(U, t.conversation_id)
    assert "half an ans" in shown[-1]["content"] and "Error" not in str(shown)  # alive
    time.sleep(0.4)  # the writer stopped saving
    shown, _, _ = h.load(U, t.conversation_id)
    text = " ".join(str(m["content"]) for m in shown)
    assert "half an ans" in text and "stopped before it finished" in text
    assert store.get_message(U, msg)["finish_reason"] == "error"
    # a writer that finishes normally overwrites the placeholder, one answer in the branch
    t2 = h.start(U, t.conversation_id, "q2", "m", "")
    h.begin_answer(U, t2, "m", "llamacpp")
    h.finish(U, t2, TurnResult(text="done", finish_reason="stop"), "m", "llamacpp")
    branch = store.branch(U, t.conversation_id)
    assert [m["content"] for m in branch][-2:] == ["q2", "done"]
    assert branch[-1]["finish_reason"] == "stop"
    store.close()
