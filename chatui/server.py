"""HTTP server: the Gradio app mounted on FastAPI, plus /healthz for Docker and load balancers."""

from __future__ import annotations

import asyncio

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from .config import Settings


def create_server_app(demo: gr.Blocks, settings: Settings) -> FastAPI:
    app = FastAPI(title=settings.space.title, docs_url=None, redoc_url=None)
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

    demo.max_threads = settings.server.max_threads
    return gr.mount_gradio_app(app, demo, path="", server_name=settings.server.host,
                               server_port=settings.server.port, show_error=True,
                               footer_links=["api"])


def serve(demo: gr.Blocks, settings: Settings) -> None:
    app = create_server_app(demo, settings)
    print(f"* Chat UI on http://{settings.server.host}:{settings.server.port}", flush=True)
    uvicorn.run(app, host=settings.server.host, port=settings.server.port,
                log_level="warning", timeout_graceful_shutdown=5)
