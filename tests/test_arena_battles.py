"""The battle service without a browser: two wire-format model servers answering at once,
stored through the real turn path in a real SQLite store; names hidden until the vote."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from backends.base import GenerationParams
from backends.remote import RemoteBackend
from chatui.arena.battles import ArenaError, BattleService
from chatui.chat import ChatService
from chatui.config import Settings
from chatui.store import NotFound, Store
from chatui.store.battles import arena_owner
from tests.wire import WireServer

NAMES = ("alpha-secret-model", "beta-secret-model")
ALICE, BOB = "anon:" + "a" * 32, "anon:" + "b" * 32


@pytest.fixture
def wires():
    with WireServer() as a, WireServer() as b:
        for wire, text in ((a, "apple "), (b, "banana ")):
            wire.config.token_text, wire.config.tokens, wire.config.delay = text, 12, 0.01
        yield a, b


def make(wires, tmp_path, seed=0, **limits):
    settings = Settings.model_validate({
        "models": [{"name": n, "type": "openai", "endpoint_url": w.url + "/v1",
                    "system_prompt": f"You are {i}."} for i, (n, w) in
                   enumerate(zip(NAMES, wires))],
        "arena": {"enabled": True}, "limits": limits,
        "storage": {"db_path": str(tmp_path / "chat.db")}})
    backends = {n: RemoteBackend(n, w.url + "/v1", defaults=GenerationParams(max_new_tokens=64))
                for n, w in zip(NAMES, wires)}
    store = Store(tmp_path / "chat.db")
    return BattleService(ChatService(settings, backends), store, rng=random.Random(seed)), store


async def run_turn(svc, user, battle_id, message, stop_after=None):
    bt = await asyncio.to_thread(svc.begin, user, battle_id, message)
    stop = asyncio.Event()
    updates = []
    async for a, b, info in svc.stream(user, bt, stop):
        updates.append((a, b, info))
        if stop_after is not None and len(updates) >= stop_after:
            stop.set()
    return bt, updates


def text_of(chat):
    return " ".join(m["content"] for m in chat if m["role"] == "assistant")


async def test_a_battle_streams_both_sides_hides_names_until_the_vote(wires, tmp_path):
    svc, store = make(wires, tmp_path)
    bt, updates = await run_turn(svc, ALICE, None, "Which fruit?")
    assert set(s["model"] for s in bt.sides) == set(NAMES)
    # both columns streamed: an update before the last with partial text on both sides
    both = [u for u in updates[:-1] if "apple" in text_of(u[0] + u[1])
            and "banana" in text_of(u[0] + u[1]) and u[2]["writing"]]
    assert both, "the two answers did not stream at the same time"
    a, b, info = updates[-1]
    answers = {text_of(a).strip(), text_of(b).strip()}
    assert answers == {("apple " * 12).strip(), ("banana " * 12).strip()}
    assert info["votes"] == ["a", "b", "tie", "bothbad"] and info["models"] is None
    for name in NAMES:                               # nothing a client sees names a model
        assert name not in json.dumps(updates)
    # the answers went through the normal turn path: full context stored
    side_a, side_b = store.battle_branches(ALICE, bt.battle_id)
    assert side_a[1]["params"]["seed"] is not None and side_a[1]["ttft"] > 0
    assert side_a[1]["system_prompt"].startswith("You are")
    assert side_a[1]["model"] == bt.sides[0]["model"] and side_a[1]["finish_reason"] == "stop"
    with pytest.raises(NotFound):                    # another user cannot vote on it
        svc.vote(BOB, bt.battle_id, 1, "a")
    winner_is_apple = "apple" in text_of(a)
    state = svc.vote(ALICE, bt.battle_id, 1, "a", "accuracy", "crisp")
    assert state["revealed"] and state["winner"] == "model_a"
    assert state["models"] == {"model_a": bt.sides[0]["model"], "model_b": bt.sides[1]["model"]}
    assert (state["models"]["model_a"] == NAMES[0]) == winner_is_apple
    # a follow-up continues both conversations
    bt2, updates2 = await run_turn(svc, ALICE, bt.battle_id, "And another?")
    a2, b2, info2 = updates2[-1]
    assert bt2.turn == 2 and info2["turn"] == 2 and info2["winner"] is None
    assert [m["content"] for m in a2 if m["role"] == "user"] == ["Which fruit?", "And another?"]
    sent = wires[0].config.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    with pytest.raises(ArenaError, match="no longer change"):
        svc.vote(ALICE, bt.battle_id, 1, "b")


async def test_failed_side_cannot_win_and_identical_answers_tie(wires, tmp_path):
    svc, store = make(wires, tmp_path)
    wires[1].config.status = 500
    bt, updates = await run_turn(svc, ALICE, None, "Hello")
    a, b, info = updates[-1]
    assert info["votes"] == ["tie", "bothbad"]
    assert "Error" in text_of(a + b)
    for name in NAMES:
        assert name not in json.dumps(updates)      # not even in the error text
    for vote in ("a", "b"):
        with pytest.raises(ArenaError, match="only be a tie"):
            svc.vote(ALICE, bt.battle_id, None, vote)
    assert svc.vote(ALICE, bt.battle_id, None, "bothbad")["winner"] == "tie (bothbad)"
    wires[1].config.status = 200
    wires[1].config.token_text = wires[0].config.token_text
    bt, updates = await run_turn(svc, ALICE, None, "Same?")
    info = updates[-1][2]
    assert info["auto_tie"] and info["winner"] == "tie" and info["votes"] == []
    assert info["models"] is None                    # nobody voted: still anonymous


async def test_stop_stores_both_as_stopped(wires, tmp_path):
    svc, store = make(wires, tmp_path)
    for w in wires:
        w.config.tokens, w.config.delay = 400, 0.02
    bt, updates = await run_turn(svc, ALICE, None, "Long story", stop_after=3)
    info = updates[-1][2]
    assert info["finish_reason_a"] == info["finish_reason_b"] == "stopped"
    assert info["votes"] == ["tie", "bothbad"]
    assert store.active_generations(ALICE) == 0       # both slots given back
    msg = store.get_message(arena_owner(ALICE), bt.sides[0]["assistant_message_id"])
    assert msg["finish_reason"] == "stopped"


async def test_limits_apply_to_battles(wires, tmp_path):
    svc, store = make(wires, tmp_path, max_concurrent_per_user=1)
    with pytest.raises(ArenaError, match="two answers at once"):
        svc.begin(ALICE, None, "hi")
    svc, store = make(wires, tmp_path, messages_per_minute=3)
    await run_turn(svc, ALICE, None, "one")            # two answers: two of three
    with pytest.raises(ArenaError, match="too fast"):
        svc.begin(ALICE, None, "two")


def test_pairs_are_two_different_models_and_undersampled_pairs_come_first(wires, tmp_path):
    svc, store = make(wires, tmp_path, seed=1)
    svc.settings.models.append(svc.settings.models[0].model_copy(update={"name": "gamma"}))
    svc.service.backends["gamma"] = svc.service.backends[NAMES[0]]

    def pick(counts):
        svc._counts, svc._counts_at = dict(counts), float("inf")
        return svc.pick_pair()

    picks = [pick({tuple(sorted(NAMES)): 1000}) for _ in range(600)]
    assert all(a != b for a, b in picks)
    assert {a for a, _ in picks} == {NAMES[0], NAMES[1], "gamma"}   # both orders happen
    old = sum(1 for p in picks if set(p) == set(NAMES))
    assert old < 6, old                              # 1/1001 weight vs 1 for the new pairs
    svc.arena.weight_undersampled = 0
    uniform = [pick({tuple(sorted(NAMES)): 1000}) for _ in range(600)]
    assert 120 < sum(1 for p in uniform if set(p) == set(NAMES)) < 280
