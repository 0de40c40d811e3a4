"""An export that writes no rows says why (CLI, stderr), instead of leaving an empty file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from chatui.export import empty_reason
from chatui.store import Store

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "chatui", "export", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})


def one_liked_answer(db: Path) -> Store:
    store = Store(db)
    conv = store.create_conversation("u1", "t", "m1")
    store.add_message("u1", conv, "user", "What is 2+2?")
    mid = store.add_message("u1", conv, "assistant", "4", model="m1")
    store.set_feedback("u1", mid, True)
    return store


def test_dpo_with_only_a_like_explains_what_a_pair_needs(tmp_path):
    db = tmp_path / "chat.db"
    one_liked_answer(db).close()
    out = tmp_path / "dpo.jsonl"
    r = run_cli("--format", "dpo", "--db", str(db), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_text() == ""
    assert "wrote 0 dpo row(s)" in r.stderr
    assert "0 DPO pairs from 1 vote(s) (1 liked, 0 disliked)" in r.stderr
    assert "a liked and a disliked answer to the same question" in r.stderr
    assert "retry an answer and vote on both" in r.stderr


def test_stdout_export_keeps_the_explanation_off_the_data(tmp_path):
    db = tmp_path / "chat.db"
    one_liked_answer(db).close()
    r = run_cli("--format", "dpo", "--db", str(db), "--out", "-")
    assert r.returncode == 0 and r.stdout == ""
    assert "0 DPO pairs" in r.stderr


def test_a_pair_gives_rows_and_no_explanation(tmp_path):
    db = tmp_path / "chat.db"
    store = one_liked_answer(db)
    conv = store.list_conversations("u1")[0]["id"]
    q = store.add_message("u1", conv, "user", "Name a colour.", parent_id=None)
    for text, label in (("blue", True), ("chair", False)):
        store.set_feedback("u1", store.add_message("u1", conv, "assistant", text, model="m1",
                                                   parent_id=q), label)
    store.close()
    out = tmp_path / "dpo.jsonl"
    r = run_cli("--format", "dpo", "--db", str(db), "--out", str(out))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(x["chosen"][0]["content"], x["rejected"][0]["content"]) for x in rows] == [
        ("blue", "chair")]
    assert "0 DPO pairs" not in r.stderr and "wrote 1 dpo row(s)" in r.stderr


def test_empty_reasons_name_the_filters_and_the_format(tmp_path):
    store = Store(tmp_path / "e.db")
    assert empty_reason(store, "dpo").startswith(
        "0 DPO pairs: the database has no votes on non-empty answers; a pair needs")
    assert empty_reason(store, "kto", model="m9") == (
        "0 KTO rows: the database has no votes on non-empty answers matching --since/--model")
    assert empty_reason(store, "conversations") == (
        "0 conversations: the database has no conversations")
    store.close()
