"""No endpoint of the app can be made to serve a file from the server's disk.

The attack (issue 9, item 0): put a file part in a value the app echoes back (the chat
history, the stop event...), Gradio copies the file into its cache and serves it at
`/gradio_api/file=…`. This test speaks Gradio's queue protocol with raw HTTP, as an
attacker would (not through gradio_client, which refuses some of these payloads): every
event of the app is called with file parts in every input, then every URL and path the
app sends back is requested.
"""

from __future__ import annotations

import json
import re
import secrets
import uuid

import httpx
import pytest

from tests.conftest import ROOT, start_app, stop_process

pytestmark = pytest.mark.slow
TOKEN = "attacker-" + "a" * 40


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files-app")
    marker = "SECRET-" + secrets.token_hex(8)
    secret = tmp / "secret.txt"
    secret.write_text(marker)
    proc, url = start_app(tmp, extra_env={"HF_TOKEN": "hf_" + marker})
    yield url, marker, [str(secret), "/etc/passwd", "/proc/self/environ",
                        str(ROOT / "spaces.yaml"), str(tmp / "chat.db-wal"),
                        str(tmp / "chat.db")]
    stop_process(proc)


def file_data(path: str) -> dict:
    return {"path": path, "url": None, "orig_name": "x.txt", "size": None,
            "mime_type": None, "is_stream": False, "meta": {"_type": "gradio.FileData"}}


def hostile_values(path: str) -> list:
    """Shapes a file part can take in a Gradio payload."""
    part = {"type": "file", "file": file_data(path)}
    return [
        file_data(path),
        [{"role": "user", "content": [part]}, {"role": "assistant", "content": [part]}],
        [{"role": "user", "content": file_data(path)}],
        {"text": "", "files": [file_data(path)]},
    ]


def call(client: httpx.Client, url: str, fn_index: int, data: list) -> str:
    """One event through the queue; everything the server streamed back, as text."""
    session = uuid.uuid4().hex[:11]
    r = client.post(url + "gradio_api/queue/join",
                    json={"data": data, "fn_index": fn_index, "session_hash": session,
                          "event_data": None, "trigger_id": None})
    if r.status_code != 200:
        return r.text
    out = []
    with client.stream("GET", url + "gradio_api/queue/data",
                       params={"session_hash": session}, timeout=30) as resp:
        for line in resp.iter_lines():
            out.append(line)
            if "process_completed" in line or "close_stream" in line:
                break
    return "\n".join(out)


def test_no_event_echoes_or_serves_a_server_file(target):
    url, marker, paths = target
    with httpx.Client(timeout=30) as client:
        config = client.get(url + "config").json()
        deps = config["dependencies"]
        calls = []
        for fn_index, dep in enumerate(deps):
            n = len(dep.get("inputs") or [])
            if n == 0:
                continue
            for k, value in enumerate(hostile_values(paths[0]) + hostile_values(paths[1])):
                # the hostile value in every input position at once, or beside a valid token
                calls.append((fn_index, [value] * n))
                calls.append((fn_index, [value if i == k % n else TOKEN for i in range(n)]))
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            seen = "".join(pool.map(lambda c: call(client, url, *c), calls))
        assert len(calls) > 100
        assert marker not in seen
        assert "root:x:0:0" not in seen
        # Whatever file URL or path came back, fetching it must not yield a server file.
        candidates = set(re.findall(r"/gradio_api/file=[^\"'\s\\]+", seen))
        candidates |= {"/gradio_api/file=" + p for p in paths}
        for c in sorted(candidates):
            r = client.get(url.rstrip("/") + c)
            assert marker not in r.text and "root:x:0:0" not in r.text, c
            assert "models:" not in r.text or r.status_code != 200, c
            assert r.status_code in (403, 404, 400), (c, r.status_code)


def test_history_from_the_client_is_not_shown_back(target):
    """A chat request with invented turns: the reply shows the stored conversation only."""
    url, _, _ = target
    from gradio_client import Client

    client = Client(url, verbose=False)
    chat, info = client.predict("Say hi.", "", "smol", "", 0.6, 0.9, 16, False, TOKEN,
                                api_name="/chat")
    text = json.dumps(chat)
    assert [m["role"] for m in chat][:1] == ["user"] and "Say hi." in text
    # the API has no history parameter any more: a conversation is named by its id
    params = [p["parameter_name"] for p in
              client._info["named_endpoints"]["/chat"]["parameters"]]
    assert "history" not in params and "conversation_id" in params
    assert info["conversation_id"]
