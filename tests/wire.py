"""A fake model server that speaks the documented wire formats, for what no real server here
can do on demand: answer 429/500, stream as fast as possible (relay ceiling), or die
mid-stream. Formats follow OpenAI's chat.completion.chunk SSE stream (`data: {json}` lines,
ending with `data: [DONE]`) and TGI's /generate_stream (`data: {"token": …, "details": …}`).

Also used by bench/ as the "fast synthetic upstream".
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# An app over one wire server, as the conversation tests run it: .format(url=server.url).
APP_CONFIG = """
models:
  - name: wire
    type: openai
    endpoint_url: {url}/v1
    context_length: 2048
    parameters: {{temperature: 0.6, top_p: 0.9, max_new_tokens: 32}}
storage:
  db_path: {{db}}
"""


# An app over a slowed wire server whose answers are followed from the store (a reload, another
# tab): long answers allowed, heartbeats often. `.format(url=server.url)`.
FOLLOW_APP_CONFIG = """
models:
  - name: wire
    type: openai
    endpoint_url: {url}/v1
    context_length: 4096
    parameters: {{temperature: 0.6, top_p: 0.9, max_new_tokens: 1000}}
storage:
  db_path: {{db}}
server: {{heartbeat_seconds: 0.5}}
"""
# Browser: the text of the chat's last answer bubble.
LAST_BOT = ("() => { const b = [...document.querySelectorAll('[data-testid=\"bot\"]')].pop();"
            " return b ? b.innerText : ''; }")

class WireConfig:
    def __init__(self):
        self.status = 200  # answer every request with this HTTP status (429, 500, ...)
        self.retry_after: str | None = None
        self.tokens = 64  # tokens per answer
        self.token_text = "tok "
        self.delay = 0.0  # seconds between tokens
        self.die_after: int | None = None  # close the socket after N tokens
        self.burst = False  # write the whole stream at once (a fast server, a proxy's buffer)
        self.requests: list[dict] = []  # bodies received
        self.raw_requests: list[bytes] = []  # the same bodies, byte for byte as sent
        # Chat route only: the exact deltas to stream instead of `tokens` × `token_text`, one
        # chunk each (one token each against max_tokens; cut there with finish "length").
        # Wire formats of reasoning models (OpenAI-compatible chat.completion.chunk):
        #   {"content": "<think>I sh"}, {"content": "ould</thi"}, {"content": "nk>Hi"}:
        #       inline tags, split anywhere (a server without a reasoning parser; the
        #       tag names are the model's own);
        #   {"reasoning_content": "…"} then {"content": "…"}: vLLM's reasoning parser and
        #       llama.cpp-server (`--reasoning-format deepseek`);
        #   {"reasoning": "…"}: the field name in newer vLLM.
        self.script: list[dict] | None = None


def _chunk(content: str | dict | None, finish: str | None = None,
           usage: dict | None = None) -> bytes:
    """One SSE event; `content` is the text, or a whole delta dict (reasoning fields)."""
    if isinstance(content, dict):
        delta = {"role": "assistant", **content}
    else:
        delta = {} if content is None else {"role": "assistant", "content": content}
    body = {"id": "chatcmpl-wire", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "wire", "choices": [] if usage else [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return b"data: " + json.dumps(body).encode() + b"\n\n"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    config: WireConfig

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        if self.path.rstrip("/") in ("/health", "/v1/models"):
            body = json.dumps({"object": "list", "data": [{"id": "wire", "object": "model"}]})
            self._send(200, body.encode(), "application/json")
        else:
            self._send(404, b'{"error":"not found"}', "application/json")

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            req = json.loads(raw)
        except json.JSONDecodeError:
            req = {}
        cfg = self.config
        cfg.raw_requests.append(raw)
        cfg.requests.append(req)
        if cfg.status != 200:
            headers = {"Retry-After": cfg.retry_after} if cfg.retry_after else {}
            msg = {429: "Rate limit reached", 500: "Internal server error",
                   503: "Model is overloaded"}.get(cfg.status, "error")
            body = json.dumps({"error": {"message": msg, "type": "error", "code": cfg.status}})
            self._send(cfg.status, body.encode(), "application/json", headers)
            return
        generate = not self.path.endswith("/chat/completions")
        max_tokens = req.get("max_tokens") or req.get("parameters", {}).get("max_new_tokens")
        script = None if generate or cfg.script is None else list(cfg.script)
        n = min(len(script) if script is not None else cfg.tokens, max_tokens or 10**9)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        out = self.wfile
        if cfg.burst:
            import io

            out = io.BytesIO()
        try:
            for i in range(n):
                if cfg.die_after is not None and i >= cfg.die_after:
                    out.flush()
                    self.connection.shutdown(2)  # abrupt: no final chunk, no [DONE]
                    return
                if cfg.delay:
                    time.sleep(cfg.delay)
                last = i == n - 1
                reason = ("length" if max_tokens and n == max_tokens else "stop") if last else None
                if script is not None:
                    reason = ("length" if n < len(script) else "stop") if last else None
                if generate:
                    ev = {"index": i, "token": {"id": i, "text": cfg.token_text, "logprob": 0.0,
                                                "special": False},
                          "generated_text": None,
                          "details": {"finish_reason": reason, "generated_tokens": n,
                                      "seed": None} if last else None,
                          "top_tokens": None}
                    out.write(b"data:" + json.dumps(ev).encode() + b"\n\n")
                else:
                    out.write(_chunk(cfg.token_text if script is None else script[i]))
                    if last:
                        out.write(_chunk(None, reason))
                        out.write(_chunk(None, usage={"prompt_tokens": 7,
                                                             "completion_tokens": n,
                                                             "total_tokens": n + 7}))
                if cfg.delay or i % 16 == 15 or last:
                    out.flush()
            if not generate:
                out.write(b"data: [DONE]\n\n")
            if cfg.burst:
                self.wfile.write(out.getvalue())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (stop button): that is the point of some tests

    def _send(self, status, body: bytes, ctype: str, headers: dict | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)


class WireServer:
    """`with WireServer() as s:` → s.url ("http://127.0.0.1:PORT"), s.config to steer it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.config = WireConfig()
        handler = type("Handler", (_Handler,), {"config": self.config})
        # The default listen backlog (5) drops connections when 32+ clients start at once.
        server_cls = type("Server", (ThreadingHTTPServer,), {"request_queue_size": 512})
        self.httpd = server_cls((host, port), handler)
        self.httpd.daemon_threads = True
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> WireServer:
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
