"""Iterators over every user's votes and conversations, for exports (KTO/DPO/JSONL) and the CLI.

They stream: rows arrive in batches (SQLite cursor, PostgreSQL server-side cursor), so an
export of a large database never holds it in memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .base import loads, message_dict, to_epoch
from .tree import CONV_COLUMNS, MSG_SELECT


class ExportsMixin:
    """Part of `Store`: cross-user iterators (owner dashboard, CLI, training-data export)."""

    def iter_feedback(self, since: Any = None, model: str | None = None) -> Iterator[dict]:
        """Every current vote (latest per message), oldest first; ``since`` = vote time.

        ``reasoning``: the rated answer's thinking (kept apart from its text; exports add it
        only on request)."""
        start = to_epoch(since)
        where, params = [], []
        if start is not None:
            where.append("f.updated_at >= ?")
            params.append(start)
        if model is not None:
            where.append("f.model = ?")
            params.append(model)
        sql = ("SELECT f.message_id, f.conversation_id, f.model, f.label, f.reason, f.comment, "
               "f.context, f.created_at, f.updated_at, m.meta AS message_meta FROM feedback f "
               "LEFT JOIN messages m ON m.id = f.message_id"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY f.updated_at, f.rowid")
        for row in self._stream(sql, params):
            row["label"] = bool(row["label"])
            row["context"] = loads(row["context"], {})
            row["reasoning"] = loads(row.pop("message_meta"), {}).get("reasoning") or ""
            yield row

    def iter_conversations(self, since: Any = None, model: str | None = None) -> Iterator[dict]:
        """Every conversation (all users) with its whole message tree and votes.

        ``since``: conversations updated at or after it. ``model``: conversations whose model,
        or the model of one of whose answers, is ``model``. Messages are oldest first; follow
        ``parent_id`` for the tree and ``current_leaf_id`` for the branch the user last saw.
        """
        start = to_epoch(since)
        where, params = [], []
        if start is not None:
            where.append("c.updated_at >= ?")
            params.append(start)
        if model is not None:
            where.append("(c.model = ? OR EXISTS (SELECT 1 FROM messages m WHERE "
                         "m.conversation_id = c.id AND m.model = ?))")
            params += [model, model]
        sql = ("SELECT id FROM conversations c"
               + (" WHERE " + " AND ".join(where) if where else "")
               + " ORDER BY created_at, rowid")
        with self._read() as db:
            ids = [r[0] for r in db.execute(sql, params).fetchall()]
        for conv_id in ids:
            # one short read per conversation: nothing stays open while the caller works
            with self._read(snapshot=True) as db:
                conv = db.one(f"SELECT {CONV_COLUMNS}, user_id FROM conversations "
                              "WHERE id = ?", [conv_id])
                if conv is None:  # deleted meanwhile
                    continue
                msgs = db.rows(MSG_SELECT + " WHERE m.conversation_id = ? "
                                            "ORDER BY m.created_at, m.rowid", [conv_id])
            conv["messages"] = [message_dict(m) for m in msgs]
            yield conv
