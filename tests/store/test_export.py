"""Export to TRL KTO / DPO / conversation JSONL, loaded back with `datasets`, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from chatui import cli  # noqa: E402
from chatui.export import dpo_rows, export, kto_rows  # noqa: E402
from chatui.store import Store  # noqa: E402

from .conftest import raw_execute  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SYS = {"role": "system", "content": "Be brief."}
Q = {"role": "user", "content": "What is 2+2?"}


@pytest.fixture
def voted(store: Store):
    return make_voted(store)


@pytest.fixture
def voted_file(db_path):
    """`voted` in a SQLite file, for the CLI (its --db takes a file)."""
    with Store(db_path) as s:
        yield make_voted(s)


def make_voted(store: Store) -> dict:
    """alice asks, retries (liked 4 / disliked 5), edits the question; bob uses model m2."""
    conv = store.create_conversation("alice", "math", model="m1", system_prompt="Be brief.")
    q = store.add_message("alice", conv, "user", "What is 2+2?")
    good = store.add_message("alice", conv, "assistant", "4", params={"temperature": 0.2})
    bad = store.add_message("alice", conv, "assistant", "5", parent_id=q,
                            params={"temperature": 1.0, "top_p": 0.9})
    store.set_feedback("alice", good, True)
    store.set_feedback("alice", bad, False, reason="incorrect", comment="wrong")
    # edit: a sibling user message with another question; its answer is disliked.
    q2 = store.add_message("alice", conv, "user", "What is 3+3?", parent_id=None)
    other = store.add_message("alice", conv, "assistant", "7",
                              sources=[{"title": "Calc", "url": "https://e.org"}])
    store.set_feedback("alice", other, False)
    # unrated retry: exported in conversations only
    store.add_message("alice", conv, "assistant", "six", parent_id=q2)
    bconv = store.create_conversation("bob", "hello", model="m2", system_prompt="")
    store.add_message("bob", bconv, "user", "Hi")
    b1 = store.add_message("bob", bconv, "assistant", "Hello!")
    store.set_feedback("bob", b1, True)
    return {"store": store, "conv": conv, "bconv": bconv, "good": good, "bad": bad,
            "other": other, "b1": b1, "q": q, "q2": q2}


def load(path):
    import datasets

    return datasets.load_dataset("json", data_files=str(path), split="train")


def test_kto_rows_load_with_datasets(voted, tmp_path):
    out = tmp_path / "kto.jsonl"
    assert export(voted["store"], "kto", out) == 4
    ds = load(out)
    assert ds.column_names == ["prompt", "completion", "label"]
    rows = sorted(ds, key=lambda r: r["completion"][0]["content"])
    assert [(r["completion"][0]["content"], r["label"]) for r in rows] == \
        [("4", True), ("5", False), ("7", False), ("Hello!", True)]
    assert rows[0]["prompt"] == [SYS, Q]
    assert rows[0]["completion"] == [{"role": "assistant", "content": "4"}]
    assert rows[2]["prompt"] == [SYS, {"role": "user", "content": "What is 3+3?"}]
    assert rows[3]["prompt"] == [{"role": "user", "content": "Hi"}]      # no empty system msg


def test_dpo_pairs_only_answers_to_the_same_prompt(voted, tmp_path):
    out = tmp_path / "dpo.jsonl"
    assert export(voted["store"], "dpo", out) == 1
    ds = load(out)
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    assert len(ds) == 1
    row = ds[0]
    assert row["prompt"] == [SYS, Q]
    assert row["chosen"] == [{"role": "assistant", "content": "4"}]
    assert row["rejected"] == [{"role": "assistant", "content": "5"}]


def test_dpo_does_not_pair_votes_from_different_conversations(voted):
    s = voted["store"]
    conv = s.create_conversation("carol", "same question", model="m1", system_prompt="Be brief.")
    s.add_message("carol", conv, "user", "What is 2+2?")
    s.set_feedback("carol", s.add_message("carol", conv, "assistant", "22"), False)
    pairs = list(dpo_rows(s))
    assert [(p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs] == [("4", "5")]


def test_dpo_grows_with_more_liked_and_disliked_retries(voted):
    s = voted["store"]
    third = s.add_message("alice", voted["conv"], "assistant", "four", parent_id=voted["q"])
    s.set_feedback("alice", third, True)
    pairs = list(dpo_rows(s))
    assert sorted((p["chosen"][0]["content"], p["rejected"][0]["content"]) for p in pairs) == \
        [("4", "5"), ("four", "5")]
    # changing a vote changes the export: the disliked answer is now liked -> no pair
    s.set_feedback("alice", voted["bad"], True)
    assert list(dpo_rows(s)) == []
    assert len(list(kto_rows(s))) == 5


def test_filters_model_and_since(voted, tmp_path):
    s = voted["store"]
    assert [r["completion"][0]["content"] for r in kto_rows(s, model="m2")] == ["Hello!"]
    assert list(dpo_rows(s, model="m2")) == []
    assert len(list(kto_rows(s, since="2999-01-01"))) == 0
    # back-date one vote: a --since after it drops exactly that row
    raw_execute(s, "UPDATE feedback SET updated_at = 86400 * 365 WHERE message_id = ?",
                [voted["bad"]])
    kept = [r["completion"][0]["content"] for r in kto_rows(s, since="1990-01-01")]
    assert sorted(kept) == ["4", "7", "Hello!"]
    assert len(list(kto_rows(s, since="1970-06-01T00:00:00Z"))) == 4
    assert list(dpo_rows(s, since="1990-01-01")) == []


def test_conversations_export_has_all_branches_and_votes(voted, tmp_path):
    out = tmp_path / "conv.jsonl"
    assert export(voted["store"], "conversations", out) == 2
    ds = load(out)
    assert len(ds) == 2
    conv = next(r for r in ds if r["id"] == voted["conv"])
    assert conv["title"] == "math" and conv["system_prompt"] == "Be brief."
    assert "user_id" not in ds.column_names
    msgs = {m["id"]: m for m in conv["messages"]}
    assert len(msgs) == 6                                   # every branch
    assert msgs[voted["good"]]["feedback"]["label"] is True
    assert msgs[voted["bad"]]["feedback"] == {"label": False, "reason": "incorrect",
                                              "comment": "wrong"}
    assert msgs[voted["bad"]]["parent_id"] == voted["q"]
    assert msgs[voted["other"]]["sources"] == [{"title": "Calc", "url": "https://e.org"}]
    branch = conv["current_branch"]
    assert branch[0] == voted["q2"] and msgs[branch[-1]]["content"] == "six"
    assert conv["created_at"].endswith("Z")
    only_m2 = list(load_rows(voted["store"], "conversations", tmp_path, model="m2"))
    assert [r["id"] for r in only_m2] == [voted["bconv"]]


def load_rows(store, fmt, tmp_path, **kw):
    out = tmp_path / f"{fmt}-filtered.jsonl"
    export(store, fmt, out, **kw)
    return [json.loads(line) for line in out.read_text().splitlines()]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "chatui", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


def test_cli_export_via_subprocess(voted_file, tmp_path):
    voted = voted_file
    db = str(voted["store"].path)
    out = tmp_path / "out" / "dpo.jsonl"
    r = run_cli("export", "--format", "dpo", "--out", str(out), "--db", db)
    assert r.returncode == 0, r.stderr
    assert "wrote 1 dpo row" in r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [(x["chosen"][0]["content"], x["rejected"][0]["content"]) for x in rows] == [("4", "5")]
    # default path from CHATUI_DB_PATH; --model filter
    out2 = tmp_path / "kto.jsonl"
    r = run_cli("export", "--format", "kto", "--out", str(out2), "--model", "m1",
                env={"CHATUI_DB_PATH": db})
    assert r.returncode == 0, r.stderr
    assert len(load(out2)) == 3


def test_cli_errors_are_one_line(tmp_path):
    r = run_cli("export", "--format", "kto", "--out", str(tmp_path / "x.jsonl"),
                "--db", str(tmp_path / "missing.db"))
    assert r.returncode == 2 and "no database at" in r.stderr
    assert not (tmp_path / "missing.db").exists()          # never created by an export
    r = run_cli("export", "--format", "kto", "--out", "-", "--db", "x.db", "--since", "yesterday")
    assert r.returncode == 2 and "--since" in r.stderr
    r = run_cli("export", "--format", "csv", "--out", "-")
    assert r.returncode == 2 and "invalid choice" in r.stderr
    r = run_cli("--help")
    assert r.returncode == 0 and "export" in r.stdout


def test_cli_registry_accepts_new_subcommands(monkeypatch, capsys):
    import types

    mod = types.ModuleType("fake_space_cmd")
    mod.HELP = "build the Space"
    mod.add_arguments = lambda p: p.add_argument("action", choices=["build"])
    mod.run = lambda args: print(f"space {args.action}") or 7
    monkeypatch.setitem(sys.modules, "fake_space_cmd", mod)
    monkeypatch.setattr(cli, "COMMANDS", dict(cli.COMMANDS))
    cli.register("space", "fake_space_cmd")
    assert cli.main(["space", "build"]) == 7
    assert capsys.readouterr().out.strip() == "space build"
