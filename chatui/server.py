"""HTTP server: the Gradio app mounted on FastAPI, plus /healthz for Docker and load balancers."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from .config import Settings
from .csp import ContentSecurityPolicy, content_security_policy
from .replica import ENV as REPLICA_ENV, ReplicaHeader, replica_id


def create_server_app(demo: gr.Blocks, settings: Settings) -> FastAPI:
    app = FastAPI(title=settings.space.title, docs_url=None, redoc_url=None)
    # Every response says what the page may load (see csp.py).
    app.add_middleware(ContentSecurityPolicy,
                       policy=content_security_policy(settings.render.image_hosts))
    if os.environ.get(REPLICA_ENV):  # behind a proxy: say which replica answered (replica.py)
        app.add_middleware(ReplicaHeader, replica=replica_id())
    service = demo.chat_service
    store = demo.store

    @app.get("/healthz")
    async def healthz():
        """200 when the database answers and at least one model is usable, else 503."""
        checks = await asyncio.gather(*(b.health() for b in service.backends.values()),
                                      return_exceptions=True)
        models = {name: ok is True for name, ok in zip(service.backends, checks)}
        try:
            store.list_conversations("healthcheck", limit=1)
            db_ok = True
        except Exception:
            db_ok = False
        ok = db_ok and any(models.values())
        return JSONResponse({"status": "ok" if ok else "unhealthy", "database": db_ok,
                             "models": models}, status_code=200 if ok else 503)

    mounted = gr.mount_gradio_app(app, demo, path="", server_name=settings.server.host,
                                  server_port=settings.server.port, show_error=True,
                                  blocked_paths=private_paths(settings),
                                  # No footer: its "Use via API" link is no use to a chat user.
                                  footer_links=[],
                                  # mount_gradio_app replaces the Blocks' css/js/head with these
                                  # arguments (None = nothing): pass on what ui.py set.
                                  css=demo.css, js=demo.js, head=demo.head)
    # mount_gradio_app never marks the Blocks as launched, and Gradio skips its own file-path
    # checks (processing_utils._check_allowed) until it is: without this, a file path in any
    # payload would be copied into the cache and served.
    demo.has_launched = True
    return mounted


def private_paths(settings: Settings) -> list[str]:
    """Files Gradio must never serve, whatever a handler returns: the database (and its WAL
    with every user's messages), the feedback folder and the config."""
    from .config import DEFAULT_CONFIG

    db_dir = Path(settings.storage.db_path).expanduser().resolve().parent
    paths = {db_dir, DEFAULT_CONFIG.resolve(), Path(os.environ.get("CHATUI_CONFIG") or
                                                    DEFAULT_CONFIG).resolve()}
    if settings.storage.feedback_folder:
        paths.add(Path(settings.storage.feedback_folder).expanduser().resolve())
    return sorted(str(p) for p in paths)


def serve(demo: gr.Blocks, settings: Settings) -> None:
    app = create_server_app(demo, settings)
    print(f"* Chat UI on http://{settings.server.host}:{settings.server.port}", flush=True)
    uvicorn.run(app, host=settings.server.host, port=settings.server.port,
                log_level="warning", timeout_graceful_shutdown=5)
