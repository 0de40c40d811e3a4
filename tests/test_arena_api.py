"""The Arena through the real app's Gradio API (gradio_client): two wire-format model servers,
names never in a response before the vote, votes stored, isolation between users."""

from __future__ import annotations

import json
import sqlite3

import pytest
from gradio_client import Client

from tests.conftest import start_app, stop_process
from tests.wire import WireServer

pytestmark = pytest.mark.slow

NAMES = ("alpha-secret-model", "beta-secret-model")
ALICE = "alice-" + "a" * 40
BOB = "bob-" + "b" * 40

CONFIG = """
models:
  - {{name: {a}, type: openai, endpoint_url: "{url_a}/v1", system_prompt: "Be brief."}}
  - {{name: {b}, type: openai, endpoint_url: "{url_b}/v1", system_prompt: "Be kind."}}
storage:
  db_path: {{db}}
arena:
  enabled: true
websearch:
  enabled: false
"""


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("arena-app")
    with WireServer() as wa, WireServer() as wb:
        for wire, text in ((wa, "apple "), (wb, "banana ")):
            wire.config.token_text, wire.config.tokens, wire.config.delay = text, 10, 0.01
        proc, url = start_app(tmp, CONFIG.format(a=NAMES[0], b=NAMES[1], url_a=wa.url,
                                                 url_b=wb.url))
        yield url, tmp / "chat.db"
        stop_process(proc)


def text(content):
    if isinstance(content, list):     # Gradio's normalised form: [{"type": "text", …}]
        return "".join(c.get("text", "") for c in content if isinstance(c, dict))
    return content


def answer_text(chat):
    return " ".join(text(m["content"]) for m in chat if m["role"] == "assistant")


def test_names_hidden_until_the_vote_and_only_the_owner_votes(app):
    url, db = app
    client = Client(url, verbose=False)
    job = client.submit("Which fruit?", "", ALICE, api_name="/arena_chat")
    outputs = list(job)
    chat_a, chat_b, info = job.result()
    seen = json.dumps([outputs, chat_a, chat_b, info])
    for name in NAMES:
        assert name not in seen
    assert {answer_text(chat_a).strip()[:5], answer_text(chat_b).strip()[:5]} == \
        {"apple", "banan"}
    battle_id = info["battle_id"]
    assert info["models"] is None and info["votes"] == ["a", "b", "tie", "bothbad"]
    got = client.predict(battle_id, ALICE, api_name="/arena_battle")
    assert got["info"]["models"] is None and all(n not in json.dumps(got) for n in NAMES)

    # another user can neither read nor vote on it, and learns nothing from the error
    bob = Client(url, verbose=False)
    for call in (lambda: bob.predict(battle_id, "a", "", "", BOB, api_name="/arena_vote"),
                 lambda: bob.predict(battle_id, BOB, api_name="/arena_battle")):
        with pytest.raises(Exception, match="does not exist") as e:
            call()
        assert all(n not in str(e.value) for n in NAMES)
    with pytest.raises(Exception, match="does not exist"):
        bob.predict("Hijack", battle_id, BOB, api_name="/arena_chat")

    # the owner votes: the names are revealed, the vote is stored
    a_is_apple = answer_text(chat_a).strip().startswith("apple")
    state = client.predict(battle_id, "a", "accuracy", "fruity", ALICE, api_name="/arena_vote")
    assert state["winner"] == "model_a" and state["revealed"]
    assert state["models"]["model_a"] == (NAMES[0] if a_is_apple else NAMES[1])
    con = sqlite3.connect(db)
    row = con.execute("SELECT t.winner, t.reason, t.comment, t.anony, t.vote_delay, b.model_a "
                      "FROM battle_turns t JOIN battles b ON b.id = t.battle_id").fetchone()
    con.close()
    assert row[:4] == ("model_a", "accuracy", "fruity", 1) and row[4] >= 0
    assert row[5] == state["models"]["model_a"]
    with pytest.raises(Exception, match="vote must be"):
        client.predict(battle_id, "c", "", "", ALICE, api_name="/arena_vote")

    # a follow-up continues both conversations
    chat_a, chat_b, info = client.predict("Another?", battle_id, ALICE,
                                          api_name="/arena_chat")
    assert info["turn"] == 2 and info["winner"] is None
    assert [text(m["content"]) for m in chat_a if m["role"] == "user"] == \
        ["Which fruit?", "Another?"]
    # the sides never show up as chats of the user (they would name the models)
    assert client.predict(ALICE, api_name="/conversations") == []
