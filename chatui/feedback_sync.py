"""Optional continuous push of votes to a Hub dataset (append-only JSONL + CommitScheduler).

Space disks are not persistent, so every vote is also appended as one JSON line to a local
folder that `huggingface_hub.CommitScheduler` commits to a *dataset* repo every few minutes.
The scheduler only ever sees these JSONL files — never the live SQLite/WAL files, which could be
uploaded half-written. Writes happen under ``scheduler.lock`` so a commit never catches a
half-written line.

Each process writes its **own** file (``feedback-<UTC time>-<random>.jsonl``): after a Space
restart the local folder is empty again, and re-using one file name would make the next commit
overwrite the Hub copy with fewer lines.

Usage (app start-up)::

    sink = start_feedback_sync(settings.storage)      # None when no repo is configured
    store = Store(settings.storage.db_path, on_feedback=sink)

Configured by ``storage.feedback_repo`` (env ``CHATUI_FEEDBACK_REPO``),
``storage.feedback_every_minutes`` and ``storage.feedback_folder``; the token comes from the
environment only (``HF_TOKEN``). A new repo is created **private**.

One line per vote change::

    {"time": ISO-8601 UTC, "event": "vote"|"unvote", "message_id", "conversation_id",
     "user": sha256(user_id)[:16], "label": true|false|null, "reason", "comment", "model",
     "backend", "params", "sources", "finish_reason", "prompt": [messages],
     "completion": [messages]}

The latest line per ``message_id`` is the current vote; ``unvote`` removes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["FeedbackLog", "start_feedback_sync", "feedback_record"]


def feedback_record(event: dict) -> dict:
    """A `Store` on_feedback event → the public JSONL row (raw user id replaced by a hash)."""
    user = event.get("user_id")
    return {
        "time": datetime.fromtimestamp(event.get("time") or 0, tz=timezone.utc)
        .isoformat().replace("+00:00", "Z"),
        "event": event.get("event"),
        "message_id": event.get("message_id"),
        "conversation_id": event.get("conversation_id"),
        "user": hashlib.sha256(user.encode()).hexdigest()[:16] if user else None,
        "label": event.get("label"),
        "reason": event.get("reason"),
        "comment": event.get("comment"),
        "model": event.get("model"),
        "backend": event.get("backend"),
        "params": event.get("params") or {},
        "sources": event.get("sources") or [],
        "finish_reason": event.get("finish_reason"),
        "prompt": event.get("prompt") or [],
        "completion": event.get("completion") or [],
    }


class FeedbackLog:
    """Append-only JSONL sink; pass an instance as ``Store(..., on_feedback=...)``.

    ``scheduler`` is anything with a ``.lock`` (a `CommitScheduler`, or a fake in tests); without
    one a private lock is used and nothing is uploaded.
    """

    def __init__(self, folder: str | os.PathLike, scheduler: Any = None) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.path = self.folder / f"feedback-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
        self.scheduler = scheduler
        self.lock = scheduler.lock if scheduler is not None else threading.Lock()

    def __call__(self, event: dict) -> None:
        line = json.dumps(feedback_record(event), ensure_ascii=False) + "\n"
        with self.lock:
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)

    def stop(self) -> None:
        """Stop the scheduler (it pushes once more on its own stop where supported)."""
        stop = getattr(self.scheduler, "stop", None)
        if callable(stop):
            stop()


def start_feedback_sync(storage: Any, *, token: str | None = None,
                        scheduler_factory: Callable[..., Any] | None = None,
                        db_path: str | os.PathLike | None = None) -> FeedbackLog | None:
    """Start pushing votes to ``storage.feedback_repo``; None (a no-op) without a repo.

    ``storage`` is a `chatui.config.StorageSettings`. ``scheduler_factory`` defaults to
    `huggingface_hub.CommitScheduler` (tests inject a fake: the Hub is not reachable there).
    """
    repo = getattr(storage, "feedback_repo", None)
    if not repo:
        return None
    folder = Path(storage.feedback_folder or Path(storage.db_path).parent / "feedback").resolve()
    db = Path(db_path or storage.db_path).resolve()
    if db == folder or folder in db.parents:
        raise ValueError(f"storage.feedback_folder {folder} must not contain the SQLite "
                         f"database {db}: the scheduler would upload live SQLite/WAL files")
    folder.mkdir(parents=True, exist_ok=True)
    if scheduler_factory is None:
        from huggingface_hub import CommitScheduler

        scheduler_factory = CommitScheduler
    scheduler = scheduler_factory(
        repo_id=repo, repo_type="dataset", folder_path=folder, path_in_repo="data",
        every=storage.feedback_every_minutes, token=token or os.environ.get("HF_TOKEN"),
        allow_patterns=["*.jsonl"], private=True,
    )
    log.info("feedback: appending votes under %s, pushed to dataset %s every %s min",
             folder, repo, storage.feedback_every_minutes)
    return FeedbackLog(folder, scheduler=scheduler)
