"""Arena battles in the store, on both engines: a turn begun in one transaction under the
per-user limits, votes with their rules, isolation between users, cross-user reads."""

from __future__ import annotations

import time

import pytest

from chatui.store import InvalidArgument, LimitReached, NotFound
from chatui.store.battles import arena_owner

from .conftest import raw_count

ALICE, BOB = "anon:alice", "anon:bob"


def battle(store, user=ALICE, text="Hello?", models=("m1", "m2"), **limits):
    return store.begin_battle_turn(user, None, text, models=models,
                                   backends=("openai", "llamacpp"),
                                   system_prompts=("Be brief.", "Be kind."), **limits)


def finish(store, user, t, texts=("answer A", "answer B"), reasons=("stop", "stop")):
    owner = arena_owner(user)
    for side, text, reason in zip(t["sides"], texts, reasons):
        store.update_message(owner, side["assistant_message_id"], content=text,
                             finish_reason=reason, params={"temperature": 0.7, "seed": 42},
                             ttft=0.1, duration=0.5)
    return store.settle_battle_turn(user, t["battle_id"], t["turn"])


def test_a_turn_is_two_conversations_with_full_context(store):
    t = battle(store, max_concurrent=2, per_minute=10, max_turns=10)
    assert t["new_battle"] and t["turn"] == 1 and t["models"] == ("m1", "m2")
    assert all(s["lease_id"] for s in t["sides"])
    assert store.active_generations(ALICE) == 2          # a battle turn is two answers
    finish(store, ALICE, t)
    a, b = store.battle_branches(ALICE, t["battle_id"])
    assert [m["role"] for m in a] == ["user", "assistant"] == [m["role"] for m in b]
    assert a[0]["content"] == b[0]["content"] == "Hello?"
    assert (a[1]["model"], a[1]["backend"], a[1]["system_prompt"]) == ("m1", "openai",
                                                                       "Be brief.")
    assert (b[1]["model"], b[1]["system_prompt"]) == ("m2", "Be kind.")
    assert a[1]["params"] == {"temperature": 0.7, "seed": 42} and a[1]["ttft"] == 0.1
    got = store.get_battle(ALICE, t["battle_id"])
    assert (got["model_a"], got["model_b"], got["revealed"]) == ("m1", "m2", False)
    assert [x["winner"] for x in got["turns"]] == [None]
    # the sides are not in the user's chat list (they would name the models)
    assert store.list_conversations(ALICE) == []
    with pytest.raises(NotFound):
        store.get_conversation(ALICE, got["conversation_a"])


def test_follow_up_continues_both_and_freezes_the_earlier_vote(store):
    t1 = battle(store)
    with pytest.raises(InvalidArgument, match="still being written"):
        store.set_battle_vote(ALICE, t1["battle_id"], 1, "model_a")
    with pytest.raises(InvalidArgument, match="still being written"):
        store.begin_battle_turn(ALICE, t1["battle_id"], "more?")
    finish(store, ALICE, t1)
    vote = store.set_battle_vote(ALICE, t1["battle_id"], 1, "model_a", "accuracy", " ok ")
    assert (vote["winner"], vote["reason"], vote["comment"], vote["anony"]) == \
        ("model_a", "accuracy", "ok", True)
    assert vote["vote_delay"] >= 0 and vote["voted_at"] <= time.time()
    # changeable until the next turn; a change made after the reveal is not blind
    vote = store.set_battle_vote(ALICE, t1["battle_id"], 1, "model_b")
    assert vote["winner"] == "model_b" and vote["anony"] is False and vote["reason"] is None
    t2 = store.begin_battle_turn(ALICE, t1["battle_id"], "Tell me more.")
    assert t2["turn"] == 2 and not t2["new_battle"] and t2["models"] == ("m1", "m2")
    assert t2["sides"][0]["system_prompt"] == "Be brief."
    assert [m["content"] for m in t2["sides"][0]["branch"]] == ["Hello?", "answer A"]
    with pytest.raises(InvalidArgument, match="no longer change"):
        store.set_battle_vote(ALICE, t1["battle_id"], 1, "model_a")
    finish(store, ALICE, t2, texts=("more A", "more B"))
    a, b = store.battle_branches(ALICE, t1["battle_id"])
    assert [m["content"] for m in a] == ["Hello?", "answer A", "Tell me more.", "more A"]
    assert [m["content"] for m in b] == ["Hello?", "answer B", "Tell me more.", "more B"]
    got = store.get_battle(ALICE, t1["battle_id"])
    assert got["revealed"] and [x["winner"] for x in got["turns"]] == ["model_b", None]


def test_vote_rules(store):
    t = battle(store)
    finish(store, ALICE, t, reasons=("error", "stop"))
    bid = t["battle_id"]
    with pytest.raises(InvalidArgument, match="winner must be"):
        store.set_battle_vote(ALICE, bid, 1, "model_c")
    with pytest.raises(InvalidArgument, match="reason must be"):
        store.set_battle_vote(ALICE, bid, 1, "tie", reason="vibes")
    for winner in ("model_a", "model_b"):       # a failed side: no side can win
        with pytest.raises(InvalidArgument, match="only be a tie"):
            store.set_battle_vote(ALICE, bid, 1, winner)
    assert store.set_battle_vote(ALICE, bid, 1, "tie (bothbad)")["winner"] == "tie (bothbad)"
    with pytest.raises(NotFound):
        store.set_battle_vote(ALICE, bid, 7, "tie")
    with pytest.raises(InvalidArgument):
        store.begin_battle_turn(ALICE, None, "x", models=("m1", "m1"))


def test_identical_answers_are_an_automatic_tie(store):
    t = battle(store)
    assert finish(store, ALICE, t, texts=("Same  answer.", "Same answer.")) is True
    got = store.get_battle(ALICE, t["battle_id"])
    assert got["turns"][0]["winner"] == "tie" and got["turns"][0]["auto"]
    assert got["revealed"] is False                  # nobody was asked: names stay hidden
    with pytest.raises(InvalidArgument, match="identical"):
        store.set_battle_vote(ALICE, t["battle_id"], 1, "model_a")
    assert store.battle_outcomes() == [("m1", "m2", "tie")]


def test_isolation_another_user_cannot_read_or_vote(store):
    t = battle(store)
    finish(store, ALICE, t)
    bid = t["battle_id"]
    for call in (lambda: store.get_battle(BOB, bid),
                 lambda: store.battle_branches(BOB, bid),
                 lambda: store.set_battle_vote(BOB, bid, 1, "model_a"),
                 lambda: store.begin_battle_turn(BOB, bid, "hijack"),
                 lambda: store.settle_battle_turn(BOB, bid, 1),
                 lambda: store.delete_battle(BOB, bid)):
        with pytest.raises(NotFound, match="not found"):
            call()
    # nor through the chat API with the side's conversation or message ids
    side = t["sides"][0]
    for call in (lambda: store.branch(BOB, side["conversation_id"]),
                 lambda: store.get_message(BOB, side["assistant_message_id"]),
                 lambda: store.set_feedback(BOB, side["assistant_message_id"], True),
                 lambda: store.get_message(ALICE, side["assistant_message_id"])):
        with pytest.raises(NotFound):
            call()
    assert store.list_battles(BOB) == []
    # a foreign id reads exactly like a missing one
    with pytest.raises(NotFound) as foreign:
        store.get_battle(BOB, bid)
    with pytest.raises(NotFound) as missing:
        store.get_battle(BOB, "0" * 32)
    assert str(foreign.value).replace(bid, "ID") == str(missing.value).replace("0" * 32, "ID")
    assert ALICE not in str(foreign.value)
    assert [b["id"] for b in store.list_battles(ALICE)] == [bid]
    assert store.get_battle(ALICE, bid)["turns"][0]["winner"] is None


def test_limits_refuse_and_write_nothing(store):
    before = {t: raw_count(store, t) for t in ("battles", "messages", "conversations")}
    store.acquire_generation(ALICE, 2, 30.0)               # one answer already being written
    with pytest.raises(LimitReached) as e:
        battle(store, max_concurrent=2)
    assert e.value.kind == "concurrent"
    with pytest.raises(LimitReached) as e:
        battle(store, user=BOB, per_minute=1)              # two answers, one message allowed
    assert e.value.kind == "rate"
    assert {t: raw_count(store, t) for t in before} == before
    assert store.active_generations(BOB) == 0
    t = battle(store, user=BOB, max_turns=2)
    finish(store, BOB, t)
    with pytest.raises(LimitReached) as e:
        store.begin_battle_turn(BOB, t["battle_id"], "again", max_turns=2)
    assert e.value.kind == "turns"


def test_cross_user_reads_for_leaderboard_and_export(store):
    t = battle(store)
    finish(store, ALICE, t)
    store.set_battle_vote(ALICE, t["battle_id"], 1, "model_b", comment="B was right")
    u = battle(store, user=BOB, models=("m3", "m1"))
    finish(store, BOB, u)
    store.set_battle_vote(BOB, u["battle_id"], 1, "model_a")
    t2 = store.begin_battle_turn(ALICE, t["battle_id"], "and?")
    finish(store, ALICE, t2, texts=("x", "y"))
    store.set_battle_vote(ALICE, t["battle_id"], 2, "model_a")   # after the reveal
    assert store.battle_outcomes() == [("m1", "m2", "model_b"), ("m3", "m1", "model_a")]
    assert len(store.battle_outcomes(anony_only=False)) == 3
    assert store.battle_pair_counts() == {("m1", "m2"): 1, ("m1", "m3"): 1}
    votes = list(store.iter_battle_votes())
    assert [(v["user_id"], v["turn"], v["winner"], v["anony"]) for v in votes] == [
        (ALICE, 1, "model_b", True), (BOB, 1, "model_a", True), (ALICE, 2, "model_a", False)]
    first = votes[0]
    assert first["comment"] == "B was right"
    assert [m["content"] for m in first["side_b"]["messages"]] == ["Hello?", "answer B"]
    assert first["side_a"]["system_prompt"] == "Be brief."
    assert [m["content"] for m in votes[2]["side_a"]["messages"]] == \
        ["Hello?", "answer A", "and?", "x"]
    assert [v["model_b"] for v in store.iter_battle_votes(model="m3")] == ["m1"]
    store.delete_battle(ALICE, t["battle_id"])
    assert raw_count(store, "battle_turns") == 1
    assert store.battle_outcomes() == [("m3", "m1", "model_a")]


def test_two_follow_ups_at_once_one_wins(store):
    """Two tabs send a follow-up to one battle at the same moment: the battle row serialises
    them, the second sees the first's answers being written and is refused."""
    import threading

    t = battle(store)
    finish(store, ALICE, t)
    barrier, outcomes = threading.Barrier(4), []

    def send(i):
        barrier.wait()
        try:
            outcomes.append(store.begin_battle_turn(ALICE, t["battle_id"], f"q{i}")["turn"])
        except InvalidArgument as e:
            outcomes.append(str(e))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(map(str, outcomes)) == ["2"] + ["the previous answers are still being "
                                                  "written"] * 3
    assert [x["turn"] for x in store.get_battle(ALICE, t["battle_id"])["turns"]] == [1, 2]
    assert raw_count(store, "battle_turns") == 2
