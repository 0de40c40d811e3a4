"""Users, conversations and the message tree (``parent_id``): nothing is ever overwritten.

A retry adds a sibling assistant message under the same user message, an edit a sibling user
message under the same parent; the conversation remembers the leaf the UI shows.
"""

from __future__ import annotations

import time
from typing import Any

from .base import (LEAF, MAX_TITLE_CHARS, META_FIELDS, ROLES, UPDATABLE, InvalidArgument,
                   NotFound, check_finish_reason, check_id, message_dict, new_id)
from .engines import Conn

CONV_COLUMNS = ("id, title, title_source, model, system_prompt, current_leaf_id, created_at, "
                "updated_at")
# Who set a title (schema v8): the first words, the model, the user (rename).
TITLE_SOURCES = ("auto", "model", "user")

MSG_SELECT = """
SELECT m.*, f.label AS fb_label, f.reason AS fb_reason, f.comment AS fb_comment
FROM messages m LEFT JOIN feedback f ON f.message_id = m.id
"""


class ConversationsMixin:
    """Part of `Store`: users, conversations, messages. Needs ``_write``/``_read`` and the
    ownership checks from `chatui.store.core`."""

    # -- users -------------------------------------------------------------------------------

    def ensure_user(self, user_id: str, name: str | None = None, kind: str | None = None) -> None:
        """Create the user if new (kind defaults to "anon"), else refresh name/kind/last seen."""
        check_id(user_id, "user_id")
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO users (id, name, kind, created_at, last_seen_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                "name = COALESCE(excluded.name, users.name), "
                "kind = COALESCE(?, users.kind), last_seen_at = excluded.last_seen_at",
                [user_id, name, kind or "anon", now, now, kind],
            )

    # -- conversations -----------------------------------------------------------------------

    def create_conversation(self, user_id: str, title: str = "", model: str = "",
                            system_prompt: str = "") -> str:
        check_id(user_id, "user_id")
        conv_id, now = new_id(), time.time()
        with self._write() as db:
            db.execute("INSERT INTO users (id, kind, created_at, last_seen_at) "
                       "VALUES (?, 'anon', ?, ?) ON CONFLICT DO NOTHING", [user_id, now, now])
            db.execute(
                "INSERT INTO conversations (id, user_id, title, model, system_prompt, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [conv_id, user_id, (title or "")[:MAX_TITLE_CHARS], model or "",
                 system_prompt or "", now, now],
            )
        return conv_id

    def list_conversations(self, user_id: str, limit: int = 200) -> list[dict]:
        check_id(user_id, "user_id")
        with self._read() as db:
            return db.rows(
                "SELECT id, title, model, created_at, updated_at FROM conversations "
                "WHERE user_id = ? ORDER BY updated_at DESC, rowid DESC LIMIT ?",
                [user_id, max(0, int(limit))],
            )

    def get_conversation(self, user_id: str, conv_id: str) -> dict:
        with self._read() as db:
            return self._own_conversation(db, user_id, conv_id)

    def update_conversation(self, user_id: str, conv_id: str, *, title: str | None = None,
                            model: str | None = None, system_prompt: str | None = None,
                            title_source: str | None = None) -> None:
        if title_source is not None and title_source not in TITLE_SOURCES:
            raise InvalidArgument(f"title_source must be one of {TITLE_SOURCES}")
        changes = {k: v for k, v in
                   (("title", None if title is None else title[:MAX_TITLE_CHARS]),
                    ("title_source", title_source),
                    ("model", model), ("system_prompt", system_prompt)) if v is not None}
        with self._write() as db:
            self._own_conversation(db, user_id, conv_id, lock=True)
            if changes:
                sets = ", ".join(f"{k} = ?" for k in changes)
                db.execute(f"UPDATE conversations SET {sets} WHERE id = ?",
                           [*changes.values(), conv_id])

    def rename_conversation(self, user_id: str, conv_id: str, title: str, by: str = "user"
                            ) -> None:
        """A new title; ``by`` says who chose it (TITLE_SOURCES): only a user's is kept when
        the first question is edited."""
        self.update_conversation(user_id, conv_id, title=str(title), title_source=by)

    def delete_conversation(self, user_id: str, conv_id: str) -> None:
        with self._write() as db:
            self._own_conversation(db, user_id, conv_id, lock=True)
            db.execute("DELETE FROM conversations WHERE id = ?", [conv_id])

    # -- messages ----------------------------------------------------------------------------

    def add_message(self, user_id: str, conv_id: str, role: str, content: str,
                    parent_id: str | None = LEAF, **meta: Any) -> str:
        """Add a message; see the package docstring for ``parent_id`` (LEAF / None / an id).

        An assistant message added without a ``finish_reason`` is *generating*: it is stamped
        with a heartbeat (see `Store.heartbeat` and `Store.interrupt_stale`).
        """
        if role not in ROLES:
            raise InvalidArgument(f"role must be one of {ROLES}, not {role!r}")
        unknown = set(meta) - META_FIELDS
        if unknown:
            raise InvalidArgument(f"unknown message field(s): {', '.join(sorted(unknown))}")
        check_finish_reason(meta.get("finish_reason"))
        msg_id, now = new_id(), time.time()
        with self._write() as db:
            conv = self._own_conversation(db, user_id, conv_id, lock=True)
            if parent_id is LEAF:
                parent_id = conv["current_leaf_id"]
            elif parent_id is not None:
                row = db.one("SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                             [parent_id, conv_id]) if isinstance(parent_id, str) else None
                if row is None:
                    raise NotFound(f"message {parent_id!r} not found")
            if role == "assistant":
                meta.setdefault("model", conv["model"] or None)
                meta.setdefault("system_prompt", conv["system_prompt"])
            cols = {k: UPDATABLE[k](v) for k, v in meta.items()}
            cols.update(id=msg_id, conversation_id=conv_id, parent_id=parent_id, role=role,
                        content=str(content or ""), created_at=now, updated_at=now)
            if role == "assistant" and cols.get("finish_reason") is None:
                cols["heartbeat_at"] = now
            names = ", ".join(cols)
            marks = ", ".join("?" for _ in cols)
            db.execute(f"INSERT INTO messages ({names}) VALUES ({marks})", list(cols.values()))
            db.execute("UPDATE conversations SET current_leaf_id = ?, updated_at = ? WHERE id = ?",
                       [msg_id, now, conv_id])
        return msg_id

    def update_message(self, user_id: str, message_id: str, **fields: Any) -> None:
        """Change an answer (e.g. when its stream ends). A change that leaves the answer
        generating (finish_reason None afterwards: kept, or set back to None to continue
        it) also counts as a heartbeat."""
        unknown = set(fields) - set(UPDATABLE)
        if unknown:
            raise InvalidArgument(f"unknown message field(s): {', '.join(sorted(unknown))}")
        check_finish_reason(fields.get("finish_reason"))
        cols = {k: UPDATABLE[k](v) for k, v in fields.items()}
        with self._write() as db:
            row = self._own_message(db, user_id, message_id, lock=True)
            if not cols:
                return
            cols["updated_at"] = time.time()
            if fields.get("finish_reason", row["finish_reason"]) is None:
                cols["heartbeat_at"] = cols["updated_at"]
            sets = ", ".join(f"{k} = ?" for k in cols)
            db.execute(f"UPDATE messages SET {sets} WHERE id = ?", [*cols.values(), message_id])

    def get_message(self, user_id: str, message_id: str) -> dict:
        with self._read() as db:
            return message_dict(self._own_message(db, user_id, message_id))

    @staticmethod
    def _path_rows(db: Conn, conv_id: str, leaf_id: str) -> list[dict]:
        """Rows root → leaf_id (leaf_id must be in conv_id).

        One primary-key lookup per level, as a correlated subquery: a join in the recursive
        term lets PostgreSQL pick a hash join that scans the whole table at every level when
        its statistics are young (seen: 210 ms for a 600-message chain, 2 ms this way). The
        final join names the conversation too, so PostgreSQL reads that conversation's rows
        by index instead of hashing the whole table against the CTE it cannot estimate
        (seen: 20 ms for 10 messages among 10,000).
        """
        return db.rows("""
            WITH RECURSIVE anc(id, depth) AS (
                SELECT id, 0 FROM messages WHERE id = ? AND conversation_id = ?
                UNION ALL
                SELECT (SELECT p.parent_id FROM messages p WHERE p.id = anc.id), anc.depth + 1
                FROM anc WHERE anc.id IS NOT NULL
            )
            SELECT m.*, f.label AS fb_label, f.reason AS fb_reason, f.comment AS fb_comment
            FROM anc JOIN messages m ON m.id = anc.id AND m.conversation_id = ?
            LEFT JOIN feedback f ON f.message_id = m.id
            ORDER BY anc.depth DESC
        """, [leaf_id, conv_id, conv_id])

    def branch(self, user_id: str, conv_id: str, leaf_id: str | None = None) -> list[dict]:
        with self._read(snapshot=True) as db:  # one snapshot for the three reads
            conv = self._own_conversation(db, user_id, conv_id)
            return self._branch_of(db, conv, leaf_id)

    def _branch_of(self, db: Conn, conv: dict, leaf_id: str | None = None) -> list[dict]:
        """`branch` of an already-checked conversation row, on ``db`` (a read or a write)."""
        conv_id = conv["id"]
        leaf = leaf_id if leaf_id is not None else conv["current_leaf_id"]
        if leaf is None:
            return []
        rows = self._path_rows(db, conv_id, leaf) if isinstance(leaf, str) else []
        if not rows:
            raise NotFound(f"message {leaf!r} not found")
        children: dict[str | None, list[str]] = {}
        for r in db.execute("SELECT id, parent_id FROM messages WHERE conversation_id = ? "
                            "ORDER BY created_at, rowid", [conv_id]).fetchall():
            children.setdefault(r[1], []).append(r[0])
        out = []
        for row in rows:
            msg = message_dict(row)
            msg["sibling_ids"] = children.get(row["parent_id"], [row["id"]])
            out.append(msg)
        return out

    def siblings(self, user_id: str, message_id: str) -> list[dict]:
        with self._read() as db:
            row = self._own_message(db, user_id, message_id)
            parent = ("m.parent_id IS NULL", []) if row["parent_id"] is None else \
                ("m.parent_id = ?", [row["parent_id"]])
            rows = db.rows(MSG_SELECT + f" WHERE m.conversation_id = ? AND {parent[0]} "
                           "ORDER BY m.created_at, m.rowid", [row["conversation_id"], *parent[1]])
        return [message_dict(r) for r in rows]

    def set_current_leaf(self, user_id: str, conv_id: str, message_id: str,
                         descend: bool = True) -> str:
        with self._write() as db:
            self._own_conversation(db, user_id, conv_id, lock=True)
            if not isinstance(message_id, str) or db.one(
                    "SELECT 1 FROM messages WHERE id = ? AND conversation_id = ?",
                    [message_id, conv_id]) is None:
                raise NotFound(f"message {message_id!r} not found")
            leaf = message_id
            while descend:
                child = db.scalar("SELECT id FROM messages WHERE parent_id = ? "
                                  "ORDER BY created_at DESC, rowid DESC LIMIT 1", [leaf])
                if child is None:
                    break
                leaf = child
            db.execute("UPDATE conversations SET current_leaf_id = ? WHERE id = ?", [leaf, conv_id])
        return leaf
