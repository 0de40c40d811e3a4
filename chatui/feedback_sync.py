"""Optional continuous push of votes to a Hub dataset (append-only JSONL + CommitScheduler).

Space disks are not persistent, so every vote is also appended as one JSON line to a local
folder that `huggingface_hub.CommitScheduler` commits to a *dataset* repo every few minutes.
The scheduler only ever sees these JSONL files — never the live SQLite/WAL files, which could be
uploaded half-written. Writes happen under ``scheduler.lock`` so a commit never catches a
half-written line.

Several replicas, one dataset. Each replica writes and pushes only its own folder,
``<feedback_folder>/<replica id>/`` → ``data/<replica id>/`` in the repo (the id is
``CHATUI_REPLICA_ID``, else ``<hostname>-<pid>``: chatui/replica.py), so no two processes ever
write or upload one file, even when the replicas share a volume. A second live process with the
same id in the same folder is detected (a lock file) and gets its pid appended. Inside its
folder each process start writes a **new** file (``feedback-<UTC time>-<random>.jsonl``): after
a Space restart the local folder is empty again, and re-using a file name would make the next
commit overwrite the Hub copy with fewer lines. The scheduler only adds files, never deletes
(other replicas' files in the repo are left alone).

Usage (app start-up)::

    sink = start_feedback_sync(settings.storage)      # None when no repo is configured
    store = Store(settings.storage.url, on_feedback=sink)

Configured by ``storage.feedback_repo`` (env ``CHATUI_FEEDBACK_REPO``),
``storage.feedback_every_minutes`` and ``storage.feedback_folder``; the token comes from the
environment only (``HF_TOKEN``). A new repo is created **private**.

One line per vote change, every field with **one JSON type in every row** (never null)::

    {"time": ISO-8601 UTC, "event": "vote"|"unvote", "message_id", "conversation_id",
     "user": sha256(user_id)[:16], "label": bool, "reason": str, "comment": str, "model": str,
     "backend": str, "finish_reason": str, "params": JSON text, "sources": JSON text,
     "prompt": JSON text of [messages], "completion": JSON text of [messages],
     "replica": str}

The latest line per ``message_id`` is the current vote; ``unvote`` removes it (its ``label`` is
false and means nothing; its prompt/completion are ``[]``). Missing text is ``""``.

Why fixed types: ``datasets.load_dataset("json", data_files="data/**/*.jsonl")`` loads all the
replicas' files as one table, and it takes each column's type from the first file it reads and
casts the others to it. A file whose rows had, say, no comment (null), no sources (``[]``) or a
different set of parameters would fix a type that the next file cannot be cast to, and the
whole dataset would fail to load. Nested values are therefore stored as JSON text
(``json.loads(row["prompt"])`` gives the TRL-style message list).
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

from .replica import replica_id

try:  # Unix: detect a second live writer with the same replica id
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

log = logging.getLogger(__name__)

__all__ = ["FeedbackLog", "start_feedback_sync", "feedback_record", "arena_record"]


def _text(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _messages(messages: Any) -> str:
    """Messages as JSON text, each exactly ``{"role": str, "content": str}``."""
    out = [{"role": _text(m.get("role")),
            "content": m.get("content") if isinstance(m.get("content"), str)
            else _json(m.get("content")) if m.get("content") is not None else ""}
           for m in (messages or []) if isinstance(m, dict)]
    return _json(out)


def feedback_record(event: dict, replica: str = "") -> dict:
    """A `Store` on_feedback event → the public JSONL row (raw user id replaced by a hash),
    every field with a fixed JSON type (see the module docstring)."""
    user = event.get("user_id")
    return {
        "time": datetime.fromtimestamp(event.get("time") or 0, tz=timezone.utc)
        .isoformat().replace("+00:00", "Z"),
        "event": _text(event.get("event")),
        "message_id": _text(event.get("message_id")),
        "conversation_id": _text(event.get("conversation_id")),
        "user": hashlib.sha256(user.encode()).hexdigest()[:16] if user else "",
        "label": bool(event.get("label")),
        "reason": _text(event.get("reason")),
        "comment": _text(event.get("comment")),
        "model": _text(event.get("model")),
        "backend": _text(event.get("backend")),
        "finish_reason": _text(event.get("finish_reason")),
        "params": _json(event.get("params") or {}),
        "sources": _json(event.get("sources") or []),
        "prompt": _messages(event.get("prompt")),
        "completion": _messages(event.get("completion")),
        "replica": replica,
    }


# -- arena battle votes (issue 12) ------------------------------------------------------------
# Votes on battles go to their own files (``arena-<UTC time>-<random>.jsonl``, beside the
# feedback files): one table per kind of row, each with fixed types. One line per vote change;
# the latest line per (battle_id, turn) is the current vote. Chatbot Arena's layout, nested
# values as JSON text as above:
#   {"time", "event": "arena_vote", "battle_id", "turn": int, "user", "model_a", "model_b",
#    "winner", "reason", "comment", "anony": bool, "vote_delay": float, "conversation_a",
#    "conversation_b" (JSON text of [messages]), "system_prompt_a", "system_prompt_b",
#    "params_a", "params_b" (JSON text), "replica"}

def arena_record(event: dict, replica: str = "") -> dict:
    """A `Store` arena_vote event → the public JSONL row (user id hashed, fixed types)."""
    user = event.get("user_id")
    row = {
        "time": datetime.fromtimestamp(event.get("time") or 0, tz=timezone.utc)
        .isoformat().replace("+00:00", "Z"),
        "event": "arena_vote",
        "battle_id": _text(event.get("battle_id")),
        "turn": int(event.get("turn") or 0),
        "user": hashlib.sha256(user.encode()).hexdigest()[:16] if user else "",
        "model_a": _text(event.get("model_a")), "model_b": _text(event.get("model_b")),
        "winner": _text(event.get("winner")), "reason": _text(event.get("reason")),
        "comment": _text(event.get("comment")), "anony": bool(event.get("anony")),
        "vote_delay": float(event.get("vote_delay") or 0.0),
    }
    for s in ("a", "b"):
        row[f"conversation_{s}"] = _messages(event.get(f"conversation_{s}"))
        row[f"system_prompt_{s}"] = _text(event.get(f"system_prompt_{s}"))
        row[f"params_{s}"] = _json(event.get(f"params_{s}") or {})
    row["replica"] = replica
    return row


DATASET_CARD = """---
configs:
- config_name: feedback
  data_files: data/**/feedback-*.jsonl
- config_name: arena
  data_files: data/**/arena-*.jsonl
tags:
- chatui
- human-feedback
---

# chatui feedback

Pushed live by a chatui app (chatui/feedback_sync.py); each replica writes `data/<replica>/`.

* `feedback`: one row per change of a thumbs vote on a chat answer (the latest row per
  `message_id` is the current vote): `time, event (vote|unvote), message_id, conversation_id,
  user (hashed), label, reason, comment, model, backend, finish_reason, params, sources,
  prompt, completion, replica`.
* `arena`: one row per change of an arena battle vote (the latest row per `battle_id, turn`
  is the current vote), Chatbot Arena's layout: `time, battle_id, turn, user (hashed),
  model_a, model_b, winner (model_a|model_b|tie|tie (bothbad)), reason, comment, anony (cast
  while the names were hidden), vote_delay (s after the last token), conversation_a,
  conversation_b, system_prompt_a/b, params_a/b, replica`.

Nested values (messages, params, sources) are JSON text: `json.loads(row["prompt"])`.
For training files with filters and counts use `python -m chatui export` on the database.
"""


def push_card(scheduler: Any) -> bool:
    """Upload DATASET_CARD as the repo's README.md unless it has one (True when uploaded).
    Best effort: a failure is logged, the app goes on."""
    api, repo = getattr(scheduler, "api", None), getattr(scheduler, "repo_id", None)
    if api is None or not repo:
        return False
    try:
        if api.file_exists(repo, "README.md", repo_type="dataset"):
            return False
        api.upload_file(path_or_fileobj=DATASET_CARD.encode(), path_in_repo="README.md",
                        repo_id=repo, repo_type="dataset",
                        commit_message="Dataset card (chatui)")
        return True
    except Exception as e:  # noqa: BLE001 - the Hub is optional
        log.warning("feedback: could not push the dataset card to %s: %s", repo, e)
        return False


class FeedbackLog:
    """Append-only JSONL sink; pass an instance as ``Store(..., on_feedback=...)``.

    Writes ``<folder>/<replica>/feedback-<UTC time>-<random>.jsonl`` (``replica`` defaults to
    `replica_id()`); ``self.folder`` is that replica folder, the one its scheduler pushes.
    ``scheduler`` is anything with a ``.lock`` (a `CommitScheduler`, or a fake in tests);
    without one a private lock is used and nothing is uploaded.
    """

    def __init__(self, folder: str | os.PathLike, scheduler: Any = None,
                 replica: str | None = None) -> None:
        self.replica = replica or replica_id()
        self._claim = None
        self.folder = self._own_folder(Path(folder))
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        self.path = self.folder / f"feedback-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
        self.arena_path = self.folder / f"arena-{stamp}-{uuid.uuid4().hex[:8]}.jsonl"
        self.scheduler = scheduler
        self.lock = scheduler.lock if scheduler is not None else threading.Lock()

    def _own_folder(self, root: Path) -> Path:
        """``root/<replica>``, held with a lock file for this process's lifetime: a second
        live process given the same replica id (one CHATUI_REPLICA_ID copied to every
        replica) gets ``<replica>-<pid>`` instead of sharing a folder and its uploads."""
        for name in (self.replica, f"{self.replica}-{os.getpid()}"):
            folder = root / name
            folder.mkdir(parents=True, exist_ok=True)
            if fcntl is None:
                break
            claim = open(folder / ".writer.lock", "a")
            try:
                fcntl.flock(claim, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                claim.close()
                log.warning("feedback: another live process writes %s (same replica id); "
                            "this one uses %s-%s", folder, self.replica, os.getpid())
                continue
            self._claim = claim
            break
        self.replica = folder.name
        return folder

    def __call__(self, event: dict) -> None:
        arena = event.get("event") == "arena_vote"
        record = (arena_record if arena else feedback_record)(event, self.replica)
        line = json.dumps(record, ensure_ascii=False) + "\n"
        with self.lock:
            with (self.arena_path if arena else self.path).open("a", encoding="utf-8") as f:
                f.write(line)

    def stop(self) -> None:
        """Stop the scheduler (it pushes once more on its own stop where supported)."""
        stop = getattr(self.scheduler, "stop", None)
        if callable(stop):
            stop()
        if self._claim is not None:
            self._claim.close()          # releases the flock
            self._claim = None


def start_feedback_sync(storage: Any, *, token: str | None = None,
                        scheduler_factory: Callable[..., Any] | None = None,
                        db_path: str | os.PathLike | None = None,
                        replica: str | None = None) -> FeedbackLog | None:
    """Start pushing votes to ``storage.feedback_repo``; None (a no-op) without a repo.

    ``storage`` is a `chatui.config.StorageSettings`. ``scheduler_factory`` defaults to
    `huggingface_hub.CommitScheduler` (tests inject a fake: the Hub is not reachable there).
    ``replica`` defaults to `replica_id()`.
    """
    repo = getattr(storage, "feedback_repo", None)
    if not repo:
        return None
    root = Path(storage.feedback_folder or Path(storage.db_path).parent / "feedback").resolve()
    on_sqlite = not str(getattr(storage, "url", "") or "").startswith(("postgresql:",
                                                                        "postgres:"))
    db = Path(db_path or storage.db_path).resolve()
    if on_sqlite and (db == root or root in db.parents):
        raise ValueError(f"storage.feedback_folder {root} must not contain the SQLite "
                         f"database {db}: the scheduler would upload live SQLite/WAL files")
    if scheduler_factory is None:
        from huggingface_hub import CommitScheduler

        scheduler_factory = CommitScheduler
    sink = FeedbackLog(root, replica=replica)     # claims root/<replica> before any upload
    try:
        sink.scheduler = scheduler_factory(
            repo_id=repo, repo_type="dataset", folder_path=sink.folder,
            path_in_repo=f"data/{sink.replica}", every=storage.feedback_every_minutes,
            token=token or os.environ.get("HF_TOKEN"), allow_patterns=["*.jsonl"],
            private=True,
        )
    except BaseException:
        sink.stop()
        raise
    sink.lock = sink.scheduler.lock
    threading.Thread(target=push_card, args=(sink.scheduler,), daemon=True,
                     name="feedback-card").start()
    log.info("feedback: appending votes under %s, pushed to dataset %s (data/%s) every %s min",
             sink.folder, repo, sink.replica, storage.feedback_every_minutes)
    return sink
