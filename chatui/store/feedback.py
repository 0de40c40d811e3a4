"""Votes on answers (one per message, the latest wins) and the owner dashboard's queries.

A vote stores a **snapshot** of what was judged, taken at vote time: the prompt messages
(system prompt first when non-empty), the completion, model, backend, params and sources.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from .base import FEEDBACK_REASONS, MAX_COMMENT_CHARS, InvalidArgument, loads, to_epoch

log = logging.getLogger("chatui.store")


def snapshot(conv: dict, path: list[dict]) -> dict:
    """What a vote judged: prompt messages (system first), the completion, its settings."""
    answer = path[-1]
    system_prompt = (answer["system_prompt"] if answer["system_prompt"] is not None
                     else conv["system_prompt"]) or ""
    prompt = [{"role": "system", "content": system_prompt}] if system_prompt else []
    prompt += [{"role": r["role"], "content": r["content"]} for r in path[:-1]]
    return {
        "prompt": prompt,
        "completion": [{"role": "assistant", "content": answer["content"]}],
        "system_prompt": system_prompt,
        "model": answer["model"],
        "backend": answer["backend"],
        "params": loads(answer["params"], {}),
        "sources": loads(answer.get("sources"), []),
        "finish_reason": answer["finish_reason"],
        "conversation_title": conv["title"],
    }


class FeedbackMixin:
    """Part of `Store`: votes, and the cross-user dashboard queries."""

    def set_feedback(self, user_id: str, message_id: str, label: bool | None,
                     reason: str | None = None, comment: str | None = None) -> None:
        """Vote on an assistant message: True up, False down, None removes the vote."""
        if label is not None and not isinstance(label, bool):
            raise InvalidArgument(f"label must be True, False or None, not {label!r}")
        if reason is not None and reason not in FEEDBACK_REASONS:
            raise InvalidArgument(f"reason must be one of {FEEDBACK_REASONS} or None, "
                                  f"not {reason!r}")
        if comment is not None:
            comment = str(comment).strip()[:MAX_COMMENT_CHARS] or None
        now = time.time()
        event: dict | None = None
        with self._write() as db:
            msg = self._own_message(db, user_id, message_id, lock=True)
            if msg["role"] != "assistant":
                raise InvalidArgument("only assistant messages can be rated")
            conv_id = msg["conversation_id"]
            if label is None:
                gone = db.execute("DELETE FROM feedback WHERE message_id = ?", [message_id])
                if gone.rowcount:
                    event = {"event": "unvote", "label": None}
            else:
                conv = {"title": msg["conv_title"], "system_prompt": msg["conv_system_prompt"]}
                snap = snapshot(conv, self._path_rows(db, conv_id, message_id))
                db.execute(
                    "INSERT INTO feedback (message_id, conversation_id, user_id, model, label, "
                    "reason, comment, context, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id) DO UPDATE SET "
                    "label = excluded.label, reason = excluded.reason, "
                    "comment = excluded.comment, context = excluded.context, "
                    "model = excluded.model, updated_at = excluded.updated_at",
                    [message_id, conv_id, user_id, msg["model"], int(label), reason, comment,
                     json.dumps(snap, ensure_ascii=False), now, now],
                )
                event = {"event": "vote", "label": label, "reason": reason, "comment": comment,
                         **snap}
        if event is not None and self.on_feedback is not None:
            event.update(message_id=message_id, conversation_id=conv_id, user_id=user_id,
                         time=now)
            try:
                self.on_feedback(event)
            except Exception:  # a sink must never break voting
                log.exception("on_feedback hook failed for message %s", message_id)

    def get_feedback(self, user_id: str, message_id: str) -> dict | None:
        with self._read() as db:
            self._own_message(db, user_id, message_id)
            row = db.one("SELECT label, reason, comment, model, context, created_at, "
                         "updated_at FROM feedback WHERE message_id = ?", [message_id])
        if row is None:
            return None
        row["label"] = bool(row["label"])
        row["context"] = loads(row["context"], {})
        return row

    # -- owner dashboard (all users) ---------------------------------------------------------

    def feedback_stats(self, since: Any = None) -> list[dict]:
        """Up/down votes per UTC day and model, newest day first (all users)."""
        start = to_epoch(since)
        with self._read() as db:
            where, params = ("WHERE updated_at >= ?", [start]) if start is not None else ("", [])
            return db.rows(
                f"SELECT {db.dialect.utc_day('updated_at')} AS day, "
                "COALESCE(model, '') AS model, "
                "SUM(CASE WHEN label = 1 THEN 1 ELSE 0 END) AS up, "
                "SUM(CASE WHEN label = 0 THEN 1 ELSE 0 END) AS down "
                f"FROM feedback {where} GROUP BY 1, 2 ORDER BY 1 DESC, 2", params)

    def latest_comments(self, limit: int = 20) -> list[dict]:
        """Newest votes that carry a comment (all users), with what they judged."""
        with self._read() as db:
            rows = db.rows(
                "SELECT message_id, model, label, reason, comment, context, updated_at "
                "FROM feedback WHERE comment IS NOT NULL AND comment != '' "
                "ORDER BY updated_at DESC LIMIT ?", [max(0, int(limit))])
        for r in rows:
            ctx = loads(r.pop("context"), {})
            users = [m["content"] for m in ctx.get("prompt", []) if m.get("role") == "user"]
            r["label"] = bool(r["label"])
            r["prompt"] = users[-1] if users else ""
            r["completion"] = (ctx.get("completion") or [{}])[0].get("content", "")
        return rows
