"""The store's vocabulary: errors, constants, value checks and row → dict conversion.

Shared by every part of the store and free of SQL and of any engine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import date, datetime, timezone
from typing import Any


class StoreError(Exception):
    """The store cannot do what was asked (open, migrate, write). One clear line."""


class NotFound(StoreError, KeyError):
    """No such conversation/message *for this user* (also raised for other users' ids)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else "not found"


class InvalidArgument(StoreError, ValueError):
    """A value the store refuses (unknown role, finish_reason, reason, field...)."""


class LimitReached(StoreError):
    """A per-user limit refused a new message; nothing was written (see `Store.begin_turn`).

    ``kind``: ``"turns"`` (the branch already has ``limit`` messages), ``"concurrent"``
    (``busy`` answers are being written, ``limit`` at once) or ``"rate"`` (``limit`` messages
    in the window; one more fits in ``retry_after`` seconds)."""

    def __init__(self, kind: str, limit: int, *, busy: int = 0, retry_after: float = 0.0):
        super().__init__(f"{kind} limit {limit} reached")
        self.kind, self.limit, self.busy, self.retry_after = kind, limit, busy, retry_after


class _Leaf:
    def __repr__(self) -> str:
        return "LEAF"


LEAF: Any = _Leaf()
"""Default ``parent_id`` of `Store.add_message`: append under the conversation's current leaf."""

ROLES = ("user", "assistant")
FINISH_REASONS = ("stop", "length", "stopped", "error")
FEEDBACK_REASONS = ("incorrect", "unhelpful", "unsafe", "other")
MAX_COMMENT_CHARS = 4000
MAX_TITLE_CHARS = 300
MAX_ID_CHARS = 256

INTERRUPTED_ERROR = "The server answering this stopped before it finished."
"""``error`` of an answer whose writer stopped heartbeating (see `Store.interrupt_stale`)."""

# Columns update_message may change, with a converter each.
UPDATABLE: dict[str, Callable[[Any], Any]] = {
    "content": str,
    "finish_reason": lambda v: v,
    "error": lambda v: None if v is None else str(v),
    "prompt_tokens": lambda v: None if v is None else int(v),
    "completion_tokens": lambda v: None if v is None else int(v),
    "ttft": lambda v: None if v is None else float(v),
    "duration": lambda v: None if v is None else float(v),
    "sources": lambda v: json.dumps(list(v or []), ensure_ascii=False),
    "params": lambda v: json.dumps(dict(v or {}), ensure_ascii=False, sort_keys=True),
    "model": lambda v: None if v is None else str(v),
    "backend": lambda v: None if v is None else str(v),
    "system_prompt": lambda v: None if v is None else str(v),
    "meta": lambda v: json.dumps(dict(v or {}), ensure_ascii=False, sort_keys=True),
}
META_FIELDS = frozenset(UPDATABLE) - {"content"}


def new_id() -> str:
    return uuid.uuid4().hex


def to_epoch(value: Any) -> float | None:
    """None | epoch seconds | datetime | date | ISO-8601 string → epoch seconds (naive = UTC)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidArgument(f"not a time: {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            value = datetime.fromisoformat(text)
        except ValueError:
            raise InvalidArgument(
                f"not an ISO date or datetime: {value!r} (e.g. 2026-11-01 or 2026-11-01T12:00)"
            ) from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc).timestamp()
    raise InvalidArgument(f"not a time: {value!r}")


def check_id(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_ID_CHARS:
        raise InvalidArgument(f"{what} must be a non-empty string of at most {MAX_ID_CHARS} chars")
    return value


def check_finish_reason(value: Any) -> None:
    if value is not None and value not in FINISH_REASONS:
        raise InvalidArgument(f"finish_reason must be one of {FINISH_REASONS} or None, "
                              f"not {value!r}")


def loads(text: str | None, default: Any) -> Any:
    if not text:
        return default
    try:
        return json.loads(text)
    except ValueError:
        return default


def message_dict(row: dict) -> dict:
    """DB row (messages.* plus optional fb_* columns) → public message dict."""
    msg = {
        "id": row["id"],
        "conversation_id": row["conversation_id"],
        "parent_id": row["parent_id"],
        "role": row["role"],
        "content": row["content"],
        "model": row["model"],
        "backend": row["backend"],
        "params": loads(row["params"], {}),
        "system_prompt": row["system_prompt"],
        "finish_reason": row["finish_reason"],
        "error": row["error"],
        "prompt_tokens": row["prompt_tokens"],
        "completion_tokens": row["completion_tokens"],
        "ttft": row["ttft"],
        "duration": row["duration"],
        "sources": loads(row.get("sources"), []),
        "meta": loads(row.get("meta"), {}),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }
    if "fb_label" in row:
        msg["feedback"] = (None if row["fb_label"] is None else
                           {"label": bool(row["fb_label"]), "reason": row["fb_reason"],
                            "comment": row["fb_comment"]})
    return msg
