"""Two replicas behind the shipped proxy, on loopback, with the real parts: one PostgreSQL
(tests/pgcluster.py), two `python app.py` processes sharing it (and CHATUI_SECRET), HAProxy
from deploy/haproxy.cfg (and nginx from deploy/nginx/chatui.conf), a paced model server
(tests/wire.py, so an answer lasts as long as the test needs), gradio_client and Chromium.

A user chats through the proxy, the replica serving them is killed with SIGKILL mid-answer,
and they carry on on the other replica: the conversation is listed, its history is intact,
the cut answer shows as interrupted with its partial text, and it can be continued. Limits
hold across both replicas. Without stickiness Gradio loses its sessions.

One module-scoped setup (PostgreSQL, both replicas, both proxies) serves every test; tests
run in file order and the killing ones bring the dead replica back first.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from gradio_client import Client

from chatui.store import INTERRUPTED_ERROR
from tests.conftest import ROOT, free_port, stop_process, wait_http
from tests.deploy.proxies import SERVICES, Proxy
from tests.pgcluster import PgCluster
from tests.wire import WireServer

pytestmark = pytest.mark.slow

COOKIE = "chatui_replica"              # deploy/haproxy.cfg's sticky cookie
CONFIG = """
models:
  - {name: wire, type: openai, endpoint_url: "%s/v1", context_length: 8192,
     parameters: {max_new_tokens: 4000}}
storage: {db_path: "{db}"}
limits: {messages_per_minute: 3, max_concurrent_per_user: 2}
server: {heartbeat_seconds: 0.5, stale_after_seconds: 3}
"""
STALE_AFTER = 3.0
TOO_FAST = "You are sending messages too fast"
SHORT = "tok tok tok tok tok tok"                 # a short answer of the wire model


def new_token() -> str:
    return "replicas-" + secrets.token_urlsafe(32)


class Replicas:
    """PostgreSQL + the wire model + two app processes on fixed ports (a replica brought
    back after SIGKILL listens where the proxies expect it)."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.upstream = WireServer().__enter__()
        self.upstream.config.delay = 0.02
        self.short_answers()
        self.pg = PgCluster().start()
        self.db_url = self.pg.create_database()
        self.secret = secrets.token_urlsafe(32)
        self.ports = {name: free_port() for name in SERVICES}
        self.procs: dict[str, subprocess.Popen] = {}
        self.proxies: dict[str, Proxy] = {}

    # -- model answers -----------------------------------------------------------------------
    def short_answers(self, tokens: int = 6) -> None:
        self.upstream.config.tokens = tokens

    def long_answers(self) -> None:
        self.upstream.config.tokens = 3000          # 60 s at 50 tokens/s: cut long before

    # -- replicas ----------------------------------------------------------------------------
    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}/"

    def start(self, name: str) -> None:
        work = self.tmp / name
        work.mkdir(exist_ok=True)
        cfg = work / "spaces.yaml"
        cfg.write_text((CONFIG % self.upstream.url).replace("{db}", str(work / "chat.db")))
        env = {**os.environ, "CHATUI_CONFIG": str(cfg), "CHATUI_HOST": "127.0.0.1",
               "CHATUI_PORT": str(self.ports[name]), "CHATUI_DATABASE_URL": self.db_url,
               "CHATUI_SECRET": self.secret, "CHATUI_REPLICA_ID": name}
        log = open(work / "app.log", "a")
        self.procs[name] = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=ROOT,
                                            env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_http(self.url(name) + "healthz", timeout=120, proc=self.procs[name])
        except Exception:
            self.procs[name].kill()
            raise RuntimeError((work / "app.log").read_text()[-3000:]) from None

    def kill(self, name: str) -> None:
        """kill -9: no shutdown handler runs, the answer being written is cut."""
        proc = self.procs[name]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def alive(self, name: str) -> bool:
        return self.procs[name].poll() is None

    def revive(self) -> None:
        """Restart any killed replica and wait until the proxies route to it again."""
        dead = [n for n in SERVICES if not self.alive(n)]
        for name in dead:
            self.start(name)
        # HAProxy marks it up after `rise 2` checks `inter 2s` apart. Asked by its cookie, not
        # by where new browsers land: `leastconn` sends every new browser to the revived
        # replica while the other still holds streams from earlier tests, so "both get new
        # browsers" may never hold even though routing is fine.
        deadline = time.monotonic() + 60
        for name in dead:
            while served_by(self.proxies["haproxy"].url, {COOKIE: name}) != name:
                assert time.monotonic() < deadline, f"the revived {name} never took traffic"
                time.sleep(0.5)

    def close(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
        for proc in self.procs.values():
            if proc.poll() is None:
                stop_process(proc)
        self.pg.stop()
        self.upstream.__exit__(None, None, None)


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    for exe in ("haproxy", "nginx"):
        if shutil.which(exe) is None:
            pytest.fail(f"{exe} is not installed (apt-get install -y {exe})")
    r = Replicas(tmp_path_factory.mktemp("replicas"))
    try:
        with ThreadPoolExecutor(2) as pool:   # both start at once on the empty database
            list(pool.map(r.start, SERVICES))
        ports = [r.ports[n] for n in SERVICES]
        for kind in ("haproxy", "nginx"):
            r.proxies[kind] = Proxy(kind, ports, r.tmp / kind).start()
        yield r
    finally:
        r.close()


# -- helpers ----------------------------------------------------------------------------------

def served_by(proxy_url: str, cookies: dict | None = None) -> str:
    """Which replica the proxy sends a browser with these cookies to (X-Chatui-Replica)."""
    r = httpx.get(proxy_url + "healthz", cookies=cookies or {}, timeout=10)
    assert r.status_code == 200, r.text
    return r.headers["x-chatui-replica"]


def spread(proxy_url: str, n: int) -> list[str]:
    """The replicas that n new browsers (no cookie) land on."""
    return [served_by(proxy_url) for _ in range(n)]


def text_of(msg) -> str:
    c = msg["content"]
    return "".join(p.get("text", "") for p in c) if isinstance(c, list) else (c or "")


def chat_args(message: str, token: str, conversation_id: str = "") -> dict:
    return dict(message=message, conversation_id=conversation_id, model="wire",
                system_prompt="", temperature=0.7, top_p=0.9, max_new_tokens=4000,
                web_search=False, token=token)


def chat(client: Client, message: str, token: str, conversation_id: str = ""):
    """One turn through /chat: (final chat messages, turn info)."""
    chat_, info = client.predict(**chat_args(message, token, conversation_id),
                                 api_name="/chat")
    return chat_, info


def proxied_client(url: str, replica: str | None = None) -> Client:
    """gradio_client through the proxy; `replica` presets HAProxy's cookie (pins it)."""
    kwargs = {"httpx_kwargs": {"cookies": {COOKIE: replica}}} if replica else {}
    return Client(url, verbose=False, **kwargs)


def bubbles(messages: list[dict]) -> list[tuple[str, str]]:
    """(role, text) without the small model-name line that starts each answer."""
    return [(m["role"], text_of(m).strip()) for m in messages
            if not re.fullmatch(r"<small>[^<]*</small>", text_of(m))]


# -- stickiness -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
def test_browsers_spread_over_both_replicas_and_each_sticks_to_one(replicas, kind):
    url = replicas.proxies[kind].url
    assert set(spread(url, 16)) == set(SERVICES)        # new sessions use both replicas
    client = proxied_client(url)
    home = served_by(url, client.cookies)
    assert [served_by(url, client.cookies) for _ in range(8)] == [home] * 8
    # join + data of several queued calls all reached `home`: each answer arrives
    token = new_token()
    final, info = chat(client, "Hello through the proxy", token)
    assert bubbles(final)[0] == ("user", "Hello through the proxy")
    assert bubbles(final)[-1] == ("assistant", SHORT)
    final, _ = chat(client, "And again", token, info["conversation_id"])
    assert [r for r, _ in bubbles(final)] == ["user", "assistant"] * 2
    assert served_by(url, client.cookies) == home


def join_then_data(proxy_url: str, token: str) -> tuple[list[str], int, str]:
    """What the browser does for one answer, as raw HTTP through a proxy: POST
    /gradio_api/queue/join, then GET /gradio_api/queue/data?session_hash=... (SSE), each on a
    new connection with the cookies the proxy set. Returns (replicas that answered the two
    requests, status of the stream, its text)."""
    api = proxy_url + "gradio_api/"
    with httpx.Client(timeout=30) as http:
        config = http.get(proxy_url + "config").json()
        fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "chat")
        session = secrets.token_hex(8)
        data = [*chat_args("raw queue call", token).values(), None]    # + the session State
        join = http.post(api + "queue/join", headers={"connection": "close"},
                         json={"data": data, "fn_index": fn, "session_hash": session,
                               "event_data": None, "trigger_id": None})
        assert join.status_code == 200, join.text
        with http.stream("GET", api + "queue/data", params={"session_hash": session},
                         headers={"connection": "close"}) as stream:
            text = ""
            try:
                for line in stream.iter_lines():
                    text += line + "\n"
                    if "process_completed" in line:
                        break
            except httpx.RemoteProtocolError as e:  # Gradio's 404 raised inside the stream
                text += f"<stream broken: {e}>"
            return ([join.headers["x-chatui-replica"], stream.headers["x-chatui-replica"]],
                    stream.status_code, text)


def test_round_robin_without_stickiness_loses_gradio_sessions(replicas):
    """The negative control. Through the shipped config, Gradio's queue/join and queue/data
    reach one replica and the answer arrives; through the same file without its cookie
    (plain round robin) they reach different replicas and the stream breaks off (Gradio
    raises its 404 inside the stream: the session is unknown there; the browser shows a
    connection error, gradio_client fails or waits forever)."""
    served, status, text = join_then_data(replicas.proxies["haproxy"].url, new_token())
    assert served[0] == served[1] and status == 200
    assert '"success": true' in text.replace('":true', '": true') and SHORT in text

    ports = [replicas.ports[n] for n in SERVICES]
    with Proxy.haproxy(ports, replicas.tmp / "round-robin", sticky=False) as rr:
        served, status, text = join_then_data(rr.url, new_token())
    assert served[0] != served[1], served
    assert "process_completed" not in text and "<stream broken" in text, (status, text)


# -- limits across replicas -------------------------------------------------------------------

def test_message_limit_counts_messages_on_both_replicas(replicas):
    """messages_per_minute: 3, with the messages alternating between the two replicas (each
    client pinned by the proxy's cookie): the 4th is refused, whichever replica gets it."""
    url = replicas.proxies["haproxy"].url
    token = new_token()
    clients = {name: proxied_client(url, name) for name in SERVICES}
    for name, client in clients.items():
        assert served_by(url, client.cookies) == name
    order = [SERVICES[0], SERVICES[1], SERVICES[0]]
    for i, name in enumerate(order):
        final, _ = chat(clients[name], f"message {i}", token)
        assert bubbles(final)[0] == ("user", f"message {i}")
    with pytest.raises(Exception, match=TOO_FAST):
        chat(clients[SERVICES[1]], "message 3", token)
    # another user is not affected
    final, _ = chat(clients[SERVICES[1]], "someone else", new_token())
    assert bubbles(final)[0] == ("user", "someone else")


def streaming(job) -> bool:
    """Whether a submitted /chat job has shown answer text yet."""
    outs = job.outputs()
    last = bubbles(outs[-1][0])[-1:] if outs else []
    return bool(last) and last[0][0] == "assistant" and "tok" in last[0][1]


def test_answers_at_once_hold_across_replicas(replicas):
    """max_concurrent_per_user: 2, with one answer streaming on each replica: a third is
    refused on either replica (the leases live in PostgreSQL); when those two end, the user
    is admitted again."""
    url = replicas.proxies["haproxy"].url
    token = new_token()
    clients = {name: proxied_client(url, name) for name in SERVICES}
    replicas.short_answers(250)                       # about 5 s each at 50 tokens/s
    try:
        jobs = [clients[name].submit(**chat_args(f"long {name}", token), api_name="/chat")
                for name in SERVICES]
        deadline = time.monotonic() + 30
        while not all(streaming(j) for j in jobs):
            assert time.monotonic() < deadline, "the two answers never started"
            time.sleep(0.1)
        assert not any(j.done() for j in jobs)
        for name in SERVICES:                         # refused wherever it lands
            with pytest.raises(Exception, match="being written"):
                chat(clients[name], "a third one", token)
        for j in jobs:
            final, info = j.result(timeout=60)
            assert info["finish_reason"] == "stop"
            assert bubbles(final)[-1][1].split() == ["tok"] * 250
    finally:
        replicas.short_answers()
    final, _ = chat(clients[SERVICES[0]], "now there is room", token)
    assert bubbles(final)[-1] == ("assistant", SHORT)


# -- a replica dies mid-answer ----------------------------------------------------------------

def stream_until_cut(client: Client, args: dict, min_words: int = 20,
                     min_seconds: float = 1.5) -> str:
    """Submit a long answer; return its text once it has streamed a while (several
    heartbeats have saved it). The caller then kills the replica."""
    job = client.submit(**args, api_name="/chat")
    t0, seen = time.monotonic(), ""
    for out in job:
        msgs = bubbles(out[0])
        seen = msgs[-1][1] if msgs and msgs[-1][0] == "assistant" else ""
        if len(seen.split()) >= min_words and time.monotonic() - t0 >= min_seconds:
            return seen
    raise AssertionError(f"the answer ended before it could be cut: {seen!r}")


@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
def test_replica_killed_mid_answer_the_user_carries_on_on_the_other(replicas, kind):
    replicas.revive()
    url = replicas.proxies[kind].url
    token = new_token()
    client = proxied_client(url)
    first = served_by(url, client.cookies)
    other = next(n for n in SERVICES if n != first)

    replicas.short_answers()
    _, info = chat(client, "My name is Ada.", token)
    conv = info["conversation_id"]
    replicas.long_answers()
    seen = stream_until_cut(client, chat_args("Tell me a very long story.", token, conv))
    killed_at = time.monotonic()
    replicas.kill(first)
    replicas.short_answers()

    # The user comes back (a new session, same token): the proxy sends them to the other one.
    again = proxied_client(url)
    assert served_by(url, again.cookies) == other
    listed = again.predict(token, api_name="/conversations")
    assert conv in [c["id"] for c in listed]

    time.sleep(max(0.0, killed_at + STALE_AFTER + 0.5 - time.monotonic()))
    history = bubbles(again.predict(conv, token, api_name="/open_conversation"))
    assert history[:3] == [("user", "My name is Ada."), ("assistant", SHORT),
                           ("user", "Tell me a very long story.")]
    partial, mark = history[3][1], history[4][1]
    assert history[3][0] == history[4][0] == "assistant" and len(history) == 5, history
    assert INTERRUPTED_ERROR in mark                   # shown as interrupted…
    words = partial.split()
    assert set(words) == {"tok"}                       # …with the text saved before the kill
    assert 5 <= len(words) < 3000, (len(words), len(seen.split()))   # a part, not the whole

    final, info2 = chat(again, "What is my name?", token, conv)     # and it goes on
    assert info2["conversation_id"] == conv
    assert bubbles(final)[-2:] == [("user", "What is my name?"),
                                   ("assistant", SHORT)]
    assert served_by(url, again.cookies) == other


# -- the same in a browser --------------------------------------------------------------------



def send(page, text: str) -> None:
    page.fill("#input textarea", text)
    page.keyboard.press("Enter")


def wait_answer_done(page) -> None:
    page.wait_for_selector("#input .submit-button", timeout=60_000)


def bot_texts(page) -> list[str]:
    return [e.inner_text() for e in page.query_selector_all('[data-testid="bot"]')]


@pytest.mark.browser
def test_browser_reloads_onto_the_other_replica_and_continues(replicas, browser):
    replicas.revive()
    url = replicas.proxies["haproxy"].url
    context = browser.new_context()
    page = context.new_page()
    try:
        replicas.short_answers()
        page.goto(url)
        page.wait_for_selector("#input textarea", timeout=60_000)
        send(page, "Remember the word pineapple.")
        page.wait_for_function("() => document.querySelectorAll("
                               "'[data-testid=\"bot\"]').length > 0", timeout=60_000)
        wait_answer_done(page)
        first = next(c["value"] for c in context.cookies() if c["name"] == COOKIE)
        assert first in SERVICES

        replicas.long_answers()
        send(page, "Tell me a very long story.")
        page.wait_for_function(
            "() => { const b = [...document.querySelectorAll('[data-testid=\"bot\"]')].pop();"
            " return b && (b.innerText.match(/tok/g) || []).length >= 30; }", timeout=60_000)
        time.sleep(1.0)                                  # a few heartbeats have saved it
        replicas.kill(first)
        killed_at = time.monotonic()
        replicas.short_answers()

        page.reload()
        page.wait_for_selector("#input textarea", timeout=60_000)
        now = next(c["value"] for c in context.cookies() if c["name"] == COOKIE)
        assert now != first and replicas.alive(now)
        # The same browser identity on the other replica (CHATUI_SECRET): its conversation.
        page.wait_for_selector("#conversations label:has-text('Remember the word pineapple.')",
                               timeout=30_000)
        time.sleep(max(0.0, killed_at + STALE_AFTER + 0.5 - time.monotonic()))
        page.click("#conversations label:has-text('Remember the word pineapple.')")
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"bot\"]')]"
            ".some(b => b.innerText.includes('stopped before it finished'))", timeout=30_000)
        users = [e.inner_text() for e in page.query_selector_all('[data-testid="user"]')]
        assert users == ["Remember the word pineapple.", "Tell me a very long story."]
        story = " ".join(bot_texts(page))
        assert story.count("tok") >= 20                  # the partial text is kept

        send(page, "Which word?")
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"user\"]')].length === 3",
            timeout=60_000)
        wait_answer_done(page)
        page.wait_for_function(
            "() => [...document.querySelectorAll('[data-testid=\"bot\"]')].pop()"
            ".innerText.includes('tok tok tok tok tok tok')", timeout=30_000)
        assert next(c["value"] for c in context.cookies() if c["name"] == COOKIE) == now
    finally:
        context.close()
