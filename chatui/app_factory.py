"""Assemble the app from settings: backends → ChatService → Gradio Blocks (queued)."""

from __future__ import annotations

import logging
import sys
import threading

import gradio as gr

from backends import Backend, BackendError, create_backend

from .chat import ChatService
from .config import ConfigError, Settings, load_settings
from .feedback_sync import start_feedback_sync
from .gradio_overheads import trim_gradio_overheads
from .history import History
from .store import Store, StoreError
from .ui import build_ui

log = logging.getLogger("chatui")


def load_or_exit(path: str | None = None) -> Settings:
    """A broken config ends the program with one line naming the key, not a traceback."""
    try:
        return load_settings(path)
    except ConfigError as e:
        print(f"chatui: config error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def build_backends(settings: Settings) -> dict[str, Backend]:
    backends: dict[str, Backend] = {}
    for spec in settings.models:
        try:
            backends[spec.name] = create_backend(spec)
        except BackendError as e:
            print(f"chatui: model {spec.name!r} is unavailable: {e.message}", file=sys.stderr)
    if not backends:
        print("chatui: no usable model in the config", file=sys.stderr)
        raise SystemExit(2)
    if settings.default_model not in backends:
        settings.default_model = next(iter(backends))
    return backends


def warm_up(backends: dict[str, Backend]) -> None:
    """Load embedded models in the background so the first answer does not pay for it."""
    for backend in backends.values():
        load = getattr(backend, "load", None)
        if load is not None:
            def run(load=load, name=backend.name):
                try:
                    load()
                except BackendError as e:
                    log.error("model %s failed to load: %s", name, e.message)
            threading.Thread(target=run, daemon=True, name=f"load-{backend.name}").start()


def open_store(settings: Settings) -> Store:
    """The database, or one clear line and exit: a chat app that cannot save must not start."""
    sink = start_feedback_sync(settings.storage)
    try:
        return Store(settings.storage.url, on_feedback=sink)   # sqlite:///… or postgresql://…
    except StoreError as e:
        if sink is not None:
            sink.stop()
        print(f"chatui: cannot open the database: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def build_app(settings: Settings, backends: dict[str, Backend] | None = None,
              store: Store | None = None) -> gr.Blocks:
    store = store or open_store(settings)
    backends = backends or build_backends(settings)
    settings.models = [m for m in settings.models if m.name in backends]
    warm_up(backends)
    service = ChatService(settings, backends)
    demo = build_ui(service, History(store, show_model=True,
                                       stale_after=settings.server.stale_after_seconds))
    demo.store = store
    # Gradio's per-event analytics summary and per-update failed matplotlib imports: off.
    trim_gradio_overheads()
    # Gradio's default is 1 concurrent run per event: one user streaming would block all.
    # Its queue also runs at most `max_threads` events at once in all, read when the queue
    # is made (default 40): set later, the 41st answer waited for another to end (seen as a
    # 5 s first token at 64 users in bench_scale). Never fewer than the answers allowed.
    demo.max_threads = max(settings.server.max_threads, settings.server.concurrency_limit)
    demo.queue(default_concurrency_limit=settings.server.concurrency_limit)
    assert demo._queue.max_thread_count == demo.max_threads
    demo.chat_service = service  # for tests and benches
    return demo
