"""Arena battles as training data through the real CLI (`python -m chatui export`), from a real
SQLite store; the files load with `datasets` and have the columns TRL's trainers read."""

from __future__ import annotations

import json
import sqlite3
import time

import datasets
import pytest

from chatui.cli import main
from chatui.store import Store
from chatui.store.battles import arena_owner

SLOW = 10.0   # seconds between the last token and a "read" vote


def battle(store, user, question, answers, winner, models=("m-a", "m-b"), read=True,
           follow_up=None):
    t = store.begin_battle_turn(user, None, question, models=models,
                                system_prompts=("Be brief.", "Be kind."))
    turns = [(t, answers, winner)] + ([follow_up] if follow_up else [])
    for i, (turn, texts, win) in enumerate(turns):
        if i:
            turn = store.begin_battle_turn(user, t["battle_id"], turn)
        for side, text in zip(turn["sides"], texts):
            store.update_message(arena_owner(user), side["assistant_message_id"], content=text,
                                 finish_reason="stop", params={"temperature": 0.5, "seed": 7})
        if read:   # the answers finished SLOW seconds before the vote
            con = sqlite3.connect(store.path)
            con.execute("UPDATE messages SET updated_at = ? WHERE id IN (?, ?)",
                        [time.time() - SLOW, *(s["assistant_message_id"]
                                               for s in turn["sides"])])
            con.commit()
            con.close()
        if not store.settle_battle_turn(user, t["battle_id"], turn["turn"]):
            store.set_battle_vote(user, t["battle_id"], turn["turn"], win,
                                  comment="mail me at jo.doe@example.org")
    return t


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "chat.db"
    with Store(path) as store:
        battle(store, "anon:u1", "Capital of France?", ("Paris.", "Lyon."), "model_a",
               follow_up=("Call +33 1 23 45 67 89?", ("Sure, dial +33 1 23 45 67 89.",
                                                        "No."), "model_b"))
        battle(store, "anon:u1", "Capital of France?", ("Paris!", "Nice."), "model_a")  # dup
        battle(store, "anon:u2", "Capital of France?", ("Paris", "Marseille"), "model_b",
               models=("m-c", "m-a"))
        battle(store, "anon:u3", "2+2?", ("4", "5"), "model_a", read=False)             # fast
        battle(store, "anon:u4", "Hi", ("Hello!", "Hello!"), "model_a")                 # tie
        battle(store, "anon:u5", "Colour?", ("Red", "Blue"), "tie (bothbad)")
    return path


def export(db, tmp_path, fmt, *extra):
    out = tmp_path / "out" / f"{fmt}.jsonl"
    assert main(["export", "--format", fmt, "--out", str(out), "--db", str(db),
                 "--min-vote-seconds", "5", *extra]) == 0
    return out, datasets.load_dataset("json", data_files=str(out), split="train")


def test_pairwise_layout_and_filters(db, tmp_path):
    out, ds = export(db, tmp_path, "pairwise", "--redact")
    for col in ("model_a", "model_b", "winner", "conversation_a", "conversation_b", "turn",
                "tstamp", "anony", "params_a", "sources_b", "system_prompt_a", "judge"):
        assert col in ds.column_names
    rows = list(ds)
    # kept: u1 turn 1 and 2, u2 (same prompt, other user), u4 auto tie, u5; dropped: u1's
    # repeated prompt and u3's vote cast at once
    assert sorted((r["model_a"], r["turn"], r["winner"]) for r in rows) == [
        ("m-a", 1, "model_a"), ("m-a", 1, "tie"), ("m-a", 1, "tie (bothbad)"),
        ("m-a", 2, "model_b"), ("m-c", 1, "model_b")]
    first = next(r for r in rows if r["turn"] == 1 and r["winner"] == "model_a")
    assert first["conversation_a"] == [{"role": "user", "content": "Capital of France?"},
                                       {"role": "assistant", "content": "Paris."}]
    assert first["system_prompt_b"] == "Be kind." and first["params_a"]["seed"] == 7
    assert first["anony"] and first["tstamp"] > 0 and json.loads(first["sources_a"]) == []
    second = next(r for r in rows if r["turn"] == 2)
    assert [m["content"] for m in second["conversation_a"]] == [
        "Capital of France?", "Paris.", "Call [phone]?", "Sure, dial [phone]."]
    assert second["anony"] is False                     # voted after the names were shown
    assert all("example.org" not in r["comment"] for r in rows)
    assert "[email]" in first["comment"]
    card = (out.parent / "README.md").read_text()
    assert "`pairwise.jsonl`: 5 row(s)" in card and "| m-a |" in card
    assert "voted too fast: 1" in card and "duplicate prompt of one user: 1" in card
    assert "phone numbers redacted" in card and " UTC" in card


def test_dpo_and_kto_take_battles_and_load_for_trl(db, tmp_path):
    _, dpo = export(db, tmp_path, "dpo")
    assert {"prompt", "chosen", "rejected"} <= set(dpo.column_names)
    pairs = {(r["chosen"][0]["content"], r["rejected"][0]["content"]) for r in dpo}
    # decided first turns only (the follow-up's sides answered different conversations)
    assert pairs == {("Paris.", "Lyon."), ("Marseille", "Paris")}
    row = next(r for r in dpo if r["chosen"][0]["content"] == "Marseille")
    assert row["prompt"] == [{"role": "system", "content": "Be kind."},
                             {"role": "user", "content": "Capital of France?"}]
    assert row["chosen"][0]["role"] == row["rejected"][0]["role"] == "assistant"
    _, kto = export(db, tmp_path, "kto")
    assert {"prompt", "completion", "label"} <= set(kto.column_names)
    labelled = sorted((r["completion"][0]["content"], r["label"]) for r in kto)
    assert ("Paris.", True) in labelled and ("Lyon.", False) in labelled
    assert ("No.", True) in labelled                    # the follow-up, with its own prompt
    follow = next(r for r in kto if r["completion"][0]["content"] == "No.")
    assert [m["content"] for m in follow["prompt"]] == [
        "Be kind.", "Capital of France?", "Lyon.", "Call +33 1 23 45 67 89?"]
    assert all(r["completion"][0]["content"] not in ("Hello!", "Red") for r in kto)


def test_an_existing_readme_is_never_overwritten(db, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "README.md").write_text("# My project\n")
    out, _ = export(db, tmp_path, "pairwise")
    assert (tmp_path / "out" / "README.md").read_text() == "# My project\n"
    assert "# chatui export: `pairwise`" in (out.parent / "pairwise.jsonl.README.md").read_text()
