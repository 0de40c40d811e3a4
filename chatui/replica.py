"""Which replica this process is, when several `python app.py` serve one site.

`replica_id()` names this process in things several replicas write side by side (the feedback
files pushed to the Hub: chatui/feedback_sync.py) and, when ``CHATUI_REPLICA_ID`` is set, in
an ``X-Chatui-Replica`` response header, so an operator (and tests/test_replicas.py) can see
which replica behind the proxy answered. Unset, the id is ``<hostname>-<pid>``: unique on one
machine and across containers, and nothing about the host is sent to browsers.
"""

from __future__ import annotations

import os
import re
import socket

ENV = "CHATUI_REPLICA_ID"
HEADER = b"x-chatui-replica"


def replica_id(env: dict[str, str] | None = None) -> str:
    """``CHATUI_REPLICA_ID``, else ``<hostname>-<pid>``; safe as a file and folder name."""
    env = os.environ if env is None else env
    raw = (env.get("CHATUI_REPLICA_ID") or "").strip() or f"{socket.gethostname()}-{os.getpid()}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw).strip(".-")[:64] or f"replica-{os.getpid()}"


class ReplicaHeader:
    """Plain ASGI middleware (not BaseHTTPMiddleware, which would sit between Gradio's SSE
    streams and client disconnects): adds ``X-Chatui-Replica: <id>`` to every response."""

    def __init__(self, app, replica: str):
        self.app = app
        self.header = (HEADER, replica.encode("latin-1", "replace"))

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_replica(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*(message.get("headers") or []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_replica)
