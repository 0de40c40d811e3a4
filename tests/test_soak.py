"""Soak: 64 concurrent gradio_client users against the real app on loopback.

The model server is the wire-format fake (tests/wire.py, an OpenAI-compatible SSE stream with
a per-token delay), so the load is on the app, not on a 2-core CPU model. Limits are set low
so they are exercised: each user may send 2 messages a minute and have 1 answer at a time.
"""

import sqlite3
import threading
import time

import httpx
import pytest
from gradio_client import Client

from tests.conftest import start_app, stop_process
from tests.wire import WireServer

pytestmark = pytest.mark.slow

CONFIG = """
models:
  - {name: wire, type: openai, endpoint_url: "%s/v1", context_length: 4096,
     parameters: {max_new_tokens: 40}}
storage: {db_path: "{db}"}
limits: {messages_per_minute: 2, max_concurrent_per_user: 1, max_message_chars: 200}
server: {concurrency_limit: 64}
"""
USERS = 64
TRIES = 3  # per user: the third must be refused by the rate limit


def test_64_clients_limits_hold_and_nothing_is_lost(tmp_path):
    with WireServer() as upstream:
        upstream.config.tokens = 30
        upstream.config.delay = 0.01
        proc, url = start_app(tmp_path, CONFIG % upstream.url)
        try:
            results: dict[int, list] = {}
            # Clients connect first (each fetches the app config); then all chat at once.
            clients = [Client(url, verbose=False, httpx_kwargs={"timeout": 120})
                       for _ in range(USERS)]

            def user(i):
                client = clients[i]
                token = f"user{i:03d}-" + "s" * 40
                outcome = []
                for n in range(TRIES):
                    try:
                        chat, info = client.predict(f"user {i} message {n}", "", "wire", "",
                                                    0.7, 0.9, 40, False, token,
                                                    api_name="/chat")
                        outcome.append(("ok", info))
                    except Exception as e:  # gradio_client raises AppError with our text
                        outcome.append(("refused", str(e)))
                results[i] = outcome

            t0 = time.perf_counter()
            threads = [threading.Thread(target=user, args=(i,)) for i in range(USERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(300)
            elapsed = time.perf_counter() - t0
            assert len(results) == USERS, "a client hung"

            oks = [info for r in results.values() for kind, info in r if kind == "ok"]
            refusals = [msg for r in results.values() for kind, msg in r if kind == "refused"]
            # Exactly the rate limit: 2 accepted and 1 refused per user, with the clear text.
            odd = {i: r for i, r in results.items()
                   if [k for k, _ in r] != ["ok", "ok", "refused"]}
            assert not odd, list(odd.items())[:3]
            assert all("too fast" in m and "2 per minute" in m for m in refusals)
            assert all(info["finish_reason"] == "stop" for info in oks)

            # No lost history: every accepted turn has its user and full assistant message.
            con = sqlite3.connect(tmp_path / "chat.db")
            answers = dict(con.execute(
                "SELECT id, content FROM messages WHERE role = 'assistant'").fetchall())
            users = con.execute("SELECT COUNT(*) FROM messages WHERE role = 'user'").fetchone()
            con.close()
            assert users[0] == USERS * 2
            assert len(answers) == USERS * 2
            assert all(answers[i["assistant_message_id"]] == "tok " * 30 for i in oks)
            # Still healthy afterwards.
            assert httpx.get(url + "healthz", timeout=10).status_code == 200
            print(f"\n64 clients x {TRIES} messages: {elapsed:.1f} s, "
                  f"{len(oks)} answers, {len(refusals)} refused")
        finally:
            stop_process(proc)
