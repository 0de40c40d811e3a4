"""Conversations, votes and isolation through the real app's Gradio API (gradio_client),
checked against the real SQLite file it writes."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from gradio_client import Client

from tests.conftest import ROOT, start_app, stop_process

pytestmark = pytest.mark.slow

ALICE = "alice-" + "a" * 40
BOB = "bob-" + "b" * 40


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("feedback-app")
    proc, url = start_app(tmp)
    yield url, tmp / "chat.db"
    stop_process(proc)


def ask(client, message, token, conversation_id="", max_new_tokens=16):
    return client.predict(message, conversation_id, "smol", "", 0.7, 0.9, max_new_tokens,
                          False, token, api_name="/chat")


def rows(db: Path, sql: str, *args):
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute(sql, args)]
    finally:
        con.close()


def test_chat_is_persisted_with_its_metadata(app):
    url, db = app
    client = Client(url, verbose=False)
    chat, info = ask(client, "What is a cat?", ALICE)
    assert info["finish_reason"] in ("stop", "length")
    msgs = rows(db, "SELECT * FROM messages WHERE conversation_id = ? ORDER BY created_at",
                info["conversation_id"])
    assert [m["role"] for m in msgs] == ["user", "assistant"]
    answer = msgs[1]
    assert answer["id"] == info["assistant_message_id"] and answer["model"] == "smol"
    assert answer["backend"] == "llamacpp" and answer["finish_reason"] == info["finish_reason"]
    assert answer["completion_tokens"] > 0 and answer["ttft"] > 0 and answer["duration"] > 0
    assert json.loads(answer["params"])["max_new_tokens"] == 16
    shown = chat[-1]["content"]
    shown = "".join(p["text"] for p in shown) if isinstance(shown, list) else shown
    assert answer["content"] and answer["content"] in shown
    convs = client.predict(ALICE, api_name="/conversations")
    assert convs[0] == {"title": "What is a cat?", "id": info["conversation_id"]}


def test_like_unlike_dislike_with_reason(app):
    url, db = app
    client = Client(url, verbose=False)
    _, info = ask(client, "Name a planet.", ALICE)
    mid = info["assistant_message_id"]
    client.predict(mid, "up", "", "", ALICE, api_name="/rate")
    assert rows(db, "SELECT label FROM feedback WHERE message_id = ?", mid) == [{"label": 1}]
    client.predict(mid, "none", "", "", ALICE, api_name="/rate")
    assert rows(db, "SELECT label FROM feedback WHERE message_id = ?", mid) == []
    client.predict(mid, "down", "incorrect", "Pluto is not a planet", ALICE, api_name="/rate")
    fb = rows(db, "SELECT label, reason, comment, context FROM feedback WHERE message_id = ?",
              mid)
    assert len(fb) == 1 and fb[0]["label"] == 0 and fb[0]["reason"] == "incorrect"
    assert fb[0]["comment"] == "Pluto is not a planet"
    ctx = json.loads(fb[0]["context"])  # the full context the vote judged
    assert ctx["prompt"][-1] == {"role": "user", "content": "Name a planet."}
    with pytest.raises(Exception, match="reason must be one of"):
        client.predict(mid, "down", "boring", "", ALICE, api_name="/rate")


def test_retry_makes_a_sibling_and_export_yields_a_dpo_pair(app, tmp_path):
    url, db = app
    client = Client(url, verbose=False)
    chat, first = ask(client, "Give me a fun fact.", ALICE)
    chat2, second = client.predict(first["conversation_id"], "smol", "", 0.9, 0.9, 16, False,
                                   ALICE, api_name="/retry")
    assert second["conversation_id"] == first["conversation_id"]
    assert second["user_message_id"] == first["user_message_id"]
    assert second["assistant_message_id"] != first["assistant_message_id"]
    siblings = rows(db, "SELECT id FROM messages WHERE parent_id = ? AND role = 'assistant'",
                    first["user_message_id"])
    assert {r["id"] for r in siblings} == {first["assistant_message_id"],
                                           second["assistant_message_id"]}
    client.predict(first["assistant_message_id"], "down", "unhelpful", "", ALICE,
                   api_name="/rate")
    client.predict(second["assistant_message_id"], "up", "", "", ALICE, api_name="/rate")

    out = tmp_path / "dpo.jsonl"
    subprocess.run([sys.executable, "-m", "chatui", "export", "--format", "dpo", "--db",
                    str(db), "--out", str(out)], cwd=ROOT, check=True, timeout=120)
    from datasets import load_dataset

    ds = load_dataset("json", data_files=str(out), split="train")
    pairs = [r for r in ds if r["prompt"][-1]["content"] == "Give me a fun fact."]
    assert len(pairs) == 1
    answers = {r["id"]: r["content"] for r in rows(
        db, "SELECT id, content FROM messages WHERE parent_id = ?", first["user_message_id"])}
    assert pairs[0]["chosen"] == [{"role": "assistant",
                                   "content": answers[second["assistant_message_id"]]}]
    assert pairs[0]["rejected"] == [{"role": "assistant",
                                     "content": answers[first["assistant_message_id"]]}]


def test_one_user_can_never_touch_anothers_conversation(app):
    url, db = app
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    _, info = ask(alice, "My secret is 4242.", ALICE)
    conv, mid = info["conversation_id"], info["assistant_message_id"]
    # Bob knows (guessed) the ids but not Alice's token.
    for call, args in [("/open_conversation", (conv, BOB)), ("/rename_conversation",
                       (conv, "pwned", BOB)), ("/delete_conversation", (conv, BOB)),
                       ("/rate", (mid, "down", "unsafe", "x", BOB))]:
        with pytest.raises(Exception, match="does not exist"):
            bob.predict(*args, api_name=call)
    assert all(c["id"] != conv for c in bob.predict(BOB, api_name="/conversations"))
    # No token, or a short guessable one, is refused outright.
    for bad in ["", "short"]:
        with pytest.raises(Exception, match="session token"):
            bob.predict(bad, api_name="/conversations")
    # Nothing changed for Alice.
    assert rows(db, "SELECT title FROM conversations WHERE id = ?", conv) == [
        {"title": "My secret is 4242."}]
    assert rows(db, "SELECT * FROM feedback WHERE message_id = ?", mid) == []
    shown = alice.predict(conv, ALICE, api_name="/open_conversation")
    assert shown[0]["content"] in ("My secret is 4242.",
                                   [{"type": "text", "text": "My secret is 4242."}])
    # Alice can rename and delete her own.
    assert alice.predict(conv, "Secrets", ALICE, api_name="/rename_conversation") == "renamed"
    assert alice.predict(conv, ALICE, api_name="/delete_conversation") == "deleted"
    assert rows(db, "SELECT * FROM messages WHERE conversation_id = ?", conv) == []


def test_bob_cannot_continue_or_retry_alices_conversation(app, tmp_path):
    """A chat or retry call naming Alice's conversation, with Bob's token, never writes into
    it and reveals nothing of it."""
    url, db = app
    alice = Client(url, verbose=False)
    chat, info = ask(alice, "Alice's question", ALICE)
    conv = info["conversation_id"]
    # Same client session (so the server-side session points at Alice's conversation).
    for args, name in [(("Bob writes here", conv, "smol", "", 0.7, 0.9, 16, False, BOB),
                        "/chat"), ((conv, "smol", "", 0.7, 0.9, 16, False, BOB), "/retry")]:
        with pytest.raises(Exception, match="does not exist") as e:
            alice.predict(*args, api_name=name)
        assert "Alice's question" not in str(e.value)
    assert len(rows(db, "SELECT * FROM messages WHERE conversation_id = ?", conv)) == 2


def test_a_cancelled_job_is_still_answered_to_its_end_and_stored(app):
    """Cancelling the job (what a closed tab does) no longer ends the answer: the model
    writes it to its end and it is stored with the model's finish reason. (The stop button
    ends it as "stopped": tests/test_browser_chat.py.)"""
    import time

    url, db = app
    client = Client(url, verbose=False)
    job = client.submit("Write a very long essay about the history of bridges.", "", "smol",
                        "", 0.7, 0.9, 96, False, ALICE, api_name="/chat")
    info = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        outs = job.outputs()
        if outs and len(outs[-1][0]) >= 2:
            chat = outs[-1][0]
            words = "".join(p.get("text", "") for p in chat[-1]["content"]).split() \
                if isinstance(chat[-1]["content"], list) else str(chat[-1]["content"]).split()
            if len(words) >= 5:
                info = outs[-1][1]
                break
        time.sleep(0.05)
    assert info, "no streamed text to cancel"
    job.cancel()
    stored = []
    for _ in range(1200):
        stored = rows(db, "SELECT content, finish_reason, completion_tokens FROM messages "
                          "WHERE parent_id = ? AND role = 'assistant' AND finish_reason IS NOT "
                          "NULL", info["user_message_id"])
        if stored:
            break
        time.sleep(0.1)
    assert len(stored) == 1 and stored[0]["finish_reason"] in ("stop", "length")
    assert len(stored[0]["content"].split()) >= len(words)
    if stored[0]["finish_reason"] == "length":
        assert stored[0]["completion_tokens"] == 96
