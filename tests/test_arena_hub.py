"""Arena votes go to the Hub dataset push (chatui/feedback_sync.py) as their own files, with
the dataset card; tested without network (the Hub is unreachable here: fakes stand in for
CommitScheduler's ``lock`` and ``api``)."""

from __future__ import annotations

import json

import datasets

from chatui.feedback_sync import DATASET_CARD, FeedbackLog, push_card
from chatui.store import Store
from chatui.store.battles import arena_owner


def test_battle_votes_are_appended_as_arena_rows(tmp_path):
    sink = FeedbackLog(tmp_path / "fb", replica="r1")
    with Store(tmp_path / "chat.db", on_feedback=sink) as store:
        t = store.begin_battle_turn("anon:u1", None, "Mail me: a@b.org", models=("m1", "m2"),
                                    system_prompts=("Be brief.", ""))
        for side, text in zip(t["sides"], ("yes", "no")):
            store.update_message(arena_owner("anon:u1"), side["assistant_message_id"],
                                 content=text, finish_reason="stop", params={"seed": 3})
        store.set_battle_vote("anon:u1", t["battle_id"], 1, "model_a", "accuracy")
        store.set_battle_vote("anon:u1", t["battle_id"], 1, "tie (bothbad)")  # changed
    assert not sink.path.exists()                     # thumbs votes' file untouched
    lines = [json.loads(x) for x in sink.arena_path.read_text().splitlines()]
    assert [r["winner"] for r in lines] == ["model_a", "tie (bothbad)"]
    first = lines[0]
    assert (first["model_a"], first["turn"], first["reason"], first["anony"]) == \
        ("m1", 1, "accuracy", True)
    assert lines[1]["anony"] is False and lines[1]["reason"] == ""
    assert json.loads(first["conversation_a"]) == [
        {"role": "user", "content": "Mail me: a@b.org"}, {"role": "assistant", "content": "yes"}]
    assert first["system_prompt_a"] == "Be brief." and json.loads(first["params_a"]) == \
        {"seed": 3}
    assert first["user"] != "anon:u1" and len(first["user"]) == 16
    ds = datasets.load_dataset("json", data_files=str(tmp_path / "fb" / "*" / "arena-*.jsonl"),
                               split="train")
    assert ds.num_rows == 2 and isinstance(ds[0]["vote_delay"], float)
    sink.stop()


class FakeApi:
    def __init__(self, has_readme: bool):
        self.has_readme, self.uploads = has_readme, []

    def file_exists(self, repo, path, repo_type=None):
        return self.has_readme

    def upload_file(self, **kwargs):
        self.uploads.append(kwargs)


def test_dataset_card_is_pushed_once():
    scheduler = type("S", (), {"api": FakeApi(False), "repo_id": "me/feedback"})()
    assert push_card(scheduler) is True
    up = scheduler.api.uploads[0]
    assert up["path_in_repo"] == "README.md" and up["repo_type"] == "dataset"
    assert b"data/**/arena-*.jsonl" in up["path_or_fileobj"]
    scheduler.api = FakeApi(True)                     # the repo has a card: left alone
    assert push_card(scheduler) is False and scheduler.api.uploads == []
    assert "config_name: arena" in DATASET_CARD
