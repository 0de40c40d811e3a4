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


def _chunk(content: str | None, finish: str | None = None, usage: dict | None = None) -> bytes:
    body = {"id": "chatcmpl-wire", "object": "chat.completion.chunk", "created": int(time.time()),
            "model": "wire", "choices": [] if usage else [
                {"index": 0, "delta": {} if content is None else {"role": "assistant",
                                                                  "content": content},
                 "logprobs": None, "finish_reason": finish}]}
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
        n = min(cfg.tokens, max_tokens or cfg.tokens)
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
                if generate:
                    ev = {"index": i, "token": {"id": i, "text": cfg.token_text, "logprob": 0.0,
                                                "special": False},
                          "generated_text": None,
                          "details": {"finish_reason": reason, "generated_tokens": n,
                                      "seed": None} if last else None,
                          "top_tokens": None}
                    out.write(b"data:" + json.dumps(ev).encode() + b"\n\n")
                else:
                    out.write(_chunk(cfg.token_text))
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
