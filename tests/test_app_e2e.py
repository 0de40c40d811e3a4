"""The real app (`python app.py`, bundled model) driven through gradio_client."""

import threading
import time

import pytest
from gradio_client import Client

from chatui.render import model_line

pytestmark = pytest.mark.slow
TOKEN = "e2e-" + "t" * 40


def text_of(msg) -> str:
    c = msg["content"]
    return "".join(p.get("text", "") for p in c) if isinstance(c, list) else (c or "")


def chat(client: Client, message: str, conversation_id="", **kw):
    """Submit one turn (a new conversation unless `conversation_id`); return every streamed
    snapshot with its time, the final chat and the turn info."""
    args = dict(message=message, conversation_id=conversation_id, model="smol",
                system_prompt="You are a helpful assistant.", temperature=0.6, top_p=0.9,
                max_new_tokens=kw.pop("max_new_tokens", 48), web_search=False, token=TOKEN)
    args.update(kw)
    t0 = time.perf_counter()
    job = client.submit(**args, api_name="/chat")
    snaps = []
    for out in job:
        snaps.append((time.perf_counter() - t0, out[0]))
    return snaps, job.outputs()[-1][0], job.outputs()[-1][-1]


def test_chat_streams_a_real_answer(app_url):
    client = Client(app_url, verbose=False)
    snaps, final, _ = chat(client, "Tell me about the moon.")
    assert final[0]["role"] == "user" and text_of(final[0]) == "Tell me about the moon."
    answer = text_of(final[-1])
    assert final[-1]["role"] == "assistant" and len(answer.split()) >= 5
    # Streamed: several snapshots with a growing answer, not one final blob.
    growing = [len(text_of(o[-1])) for _, o in snaps if len(o) > 1]
    assert len(set(growing)) >= 3, growing
    assert growing == sorted(growing)


def test_history_is_sent_back_to_the_model(app_url):
    client = Client(app_url, verbose=False)
    _, first, info = chat(client, "My name is Zorblax.", max_new_tokens=16)
    _, second, _ = chat(client, "What is my name?", conversation_id=info["conversation_id"],
                        max_new_tokens=24)
    texts = [m for m in second if text_of(m) != model_line("smol")["content"]]
    assert [m["role"] for m in texts] == ["user", "assistant", "user", "assistant"]
    assert text_of(second[0]) == "My name is Zorblax."


def test_two_clients_stream_at_the_same_time(app_url):
    results = {}

    def run(name, q):
        client = Client(app_url, verbose=False)
        snaps, final, _ = chat(client, q, max_new_tokens=40)
        tokens = [t for t, o in snaps if len(o) > 1 and text_of(o[-1])]
        results[name] = (tokens[0], snaps[-1][0], text_of(final[-1]), time.perf_counter())

    threads = [threading.Thread(target=run, args=(n, q)) for n, q in
               [("a", "Describe a forest."), ("b", "Describe the sea.")]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert set(results) == {"a", "b"}
    (a_first, a_total, a_text, _), (b_first, b_total, b_text, _) = results["a"], results["b"]
    assert a_text.strip() and b_text.strip()
    # Both streamed concurrently: each saw its first token before the other was done.
    assert a_first < b_total and b_first < a_total, results


def test_empty_and_oversized_messages_are_refused_without_calling_the_model(app_url):
    client = Client(app_url, verbose=False)
    _, final, _ = chat(client, "   ")
    assert final == []
    with pytest.raises(Exception) as e:
        client.predict("x" * 20_000, "", "smol", "", 0.6, 0.9, 16, False, TOKEN,
                       api_name="/chat")
    assert "20,000 characters" in str(e.value) and "limit is 16,000" in str(e.value)


def test_health_endpoint_reports_database_and_models(app_url):
    import httpx

    r = httpx.get(app_url + "healthz", timeout=10)
    assert r.status_code == 200
    body = r.json()
    assert body == {"status": "ok", "database": True, "models": {"smol": True}}
