"""Whatever an API client sends, the app answers with a sentence a person can act on, and
stores nothing half-way (issue 9, item 3b). Real app, real gradio_client."""

from __future__ import annotations

import json
import math
import sqlite3

import pytest
from gradio_client import Client

from tests.conftest import start_app, stop_process

pytestmark = pytest.mark.slow
TOKEN = "valid-" + "v" * 40


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("validation-app")
    proc, url = start_app(tmp)
    yield url, tmp / "chat.db"
    stop_process(proc)


def count(db, table="messages") -> int:
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def chat_args(message="Hello", conv="", model="smol", system="", temperature=0.6, top_p=0.9,
              max_new_tokens=16, web=False, token=TOKEN):
    return (message, conv, model, system, temperature, top_p, max_new_tokens, web, token)


# /chat takes its inputs raw (preprocess=False, see ui.py): every check below is the
# handler's own, in the same words for the browser and for API callers.
@pytest.mark.parametrize("kw, says", [
    ({"message": 12345}, "The message must be text"),
    ({"message": {"path": "/etc/passwd", "meta": {"_type": "gradio.FileData"}}},
     "was not uploaded by a user"),  # Gradio's file check still runs before the handler
    ({"conv": 7}, "conversation id must be text"),
    ({"token": 12345}, "session token must be text"),
    ({"token": "\ud800" * 40}, "Invalid session token"),
    ({"message": "hi \ud83d there"}, "not valid text"),
    ({"system": "x" * 9000}, "system prompt has 9,000 characters"),
    ({"system": "\udc80"}, "system prompt contains characters"),
    ({"max_new_tokens": math.nan}, "Max new tokens must be a number"),
    ({"max_new_tokens": 100_000}, "Max new tokens must be a number from 1 to 2,048"),
    ({"temperature": math.nan}, "Temperature must be a number"),
    ({"temperature": "hot"}, "Temperature must be a number"),
    ({"top_p": 7}, "Top-p must be a number from 0.01 to 1"),
    ({"top_p": math.nan}, "Top-p must be a number"),
    ({"model": "gpt-17"}, "Unknown model. Pick one of: smol"),
    ({"conv": "0" * 32}, "does not exist"),
])
def test_bad_values_get_a_clear_message_and_store_nothing(app, kw, says):
    url, db = app
    before = count(db)
    message = call_api(url, "chat", list(chat_args(**kw)))
    assert "event: error" in message, message
    assert says in message or says.replace("2,048", "2048") in message, message
    assert "Traceback" not in message and "Error:" not in message.split("data:", 1)[-1][:20]
    assert count(db) == before


def call_api(url: str, name: str, data: list) -> str:
    """Gradio's REST route, raw: JSON with \\u escapes can carry what gradio_client cannot
    encode (lone surrogates), as any HTTP client could."""
    import httpx

    body = json.dumps({"data": data}, ensure_ascii=True, allow_nan=True)
    r = httpx.post(f"{url}gradio_api/call/{name}", content=body,
                   headers={"content-type": "application/json"}, timeout=30)
    if r.status_code != 200:
        return f"event: error\ndata: HTTP {r.status_code} {r.text}"
    event_id = r.json()["event_id"]
    with httpx.stream("GET", f"{url}gradio_api/call/{name}/{event_id}", timeout=60) as resp:
        return "".join(resp.iter_text())


def test_retry_answers_the_stored_question_not_one_sent_with_it(app):
    url, db = app
    client = Client(url, verbose=False)
    _, info = client.predict(*chat_args("What is 2 plus 2?"), api_name="/chat")
    chat, info2 = client.predict(info["conversation_id"], "smol", "", 0.6, 0.9, 16, False, TOKEN,
                                 api_name="/retry")
    assert info2["user_message_id"] == info["user_message_id"]
    user_texts = [m["content"] for m in chat if m["role"] == "user"]
    flat = [c if isinstance(c, str) else "".join(p.get("text", "") for p in c)
            for c in user_texts]
    assert flat == ["What is 2 plus 2?"]


def test_answers_store_a_fresh_seed_each_time(app):
    """Every process seeds llama.cpp the same way: without a per-request seed the same
    question gets the same answer after each restart (item 7)."""
    import json

    url, db = app
    client = Client(url, verbose=False)
    seeds = []
    for _ in range(3):
        _, info = client.predict(*chat_args("Name a colour."), api_name="/chat")
        con = sqlite3.connect(db)
        params = json.loads(con.execute("SELECT params FROM messages WHERE id = ?",
                                        [info["assistant_message_id"]]).fetchone()[0])
        con.close()
        seeds.append(params["seed"])
    assert all(isinstance(s, int) for s in seeds) and len(set(seeds)) == 3


def test_remote_model_errors_and_description_do_not_show_the_endpoint(tmp_path):
    """A dead endpoint: the user reads that the server is unreachable, never its URL."""
    from tests.conftest import free_port

    port = free_port()  # nothing listens there
    secret_host = f"http://127.0.0.1:{port}/v1"
    proc, url = start_app(tmp_path, extra_env={"CHATUI_ENDPOINT_URL": secret_host,
                                               "CHATUI_ENDPOINT_MODEL": "remote-model"})
    try:
        client = Client(url, verbose=False)
        chat, info = client.predict("Hello", "", "remote-model", "", 0.6, 0.9, 16, False, TOKEN,
                                    api_name="/chat")
        shown = str(chat)
        assert info["finish_reason"] == "error" and "Cannot reach the model server" in shown
        assert str(port) not in shown
        page = client.session.get(url + "config").text if hasattr(client, "session") else ""
        import httpx

        page = httpx.get(url + "config", timeout=10).text
        assert secret_host not in page and f":{port}" not in page
    finally:
        stop_process(proc)
