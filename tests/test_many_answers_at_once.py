"""More answers at once than Gradio's default 40 running events (real app, wire-format fake
model, gradio_client). Gradio's queue runs at most `max_threads` events at once, read when
the queue is made; the app once set it too late, so the 41st answer waited for another to
end. Here 48 answers, each ~3 s long, must all be streaming before the first one ends."""

from __future__ import annotations

import time

import pytest
from gradio_client import Client

from tests.conftest import start_app, stop_process
from tests.wire import WireServer

pytestmark = pytest.mark.slow

N = 48
CONFIG = """
models:
  - {{name: wire, type: openai, endpoint_url: "{url}/v1", context_length: 4096,
     parameters: {{max_new_tokens: 1000}}}}
storage:
  db_path: {{db}}
conversations:
  auto_titles: false
limits: {{messages_per_minute: 1000, max_concurrent_per_user: 100}}
server: {{concurrency_limit: 64}}
"""


def test_48_answers_stream_at_once(tmp_path):
    with WireServer() as wire:
        wire.config.tokens, wire.config.delay = 60, 0.05            # 3 s per answer
        proc, url = start_app(tmp_path, CONFIG.format(url=wire.url))
        try:
            client = Client(url, verbose=False, max_workers=N + 8)  # its own default is 40
            jobs = [client.submit(f"question {i}", "", "wire", "", 0.7, 0.9, 1000, False,
                                  f"many-{i:02d}-" + "x" * 40, api_name="/chat")
                    for i in range(N)]

            def answering(job) -> bool:
                outs = job.outputs()
                msgs = outs[-1][0] if outs else []
                return any(m["role"] == "assistant" and "tok" in str(m["content"])
                           for m in msgs)

            deadline = time.monotonic() + 60
            while not all(answering(j) for j in jobs):
                assert not any(j.done() for j in jobs), (
                    f"an answer ended while only {sum(map(answering, jobs))} of {N} had "
                    "started: the queue runs fewer events at once than answers allowed")
                assert time.monotonic() < deadline
                time.sleep(0.05)
            finals = [j.result(timeout=60) for j in jobs]
            assert all(info["finish_reason"] == "stop" for _, info in finals)
        finally:
            stop_process(proc)
