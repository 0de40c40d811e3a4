"""Files sent with a message: images (re-encoded bytes + a preview) and documents (their text,
chunked with pages), kept beside the conversation and owned through it like its messages.

Items handed to the store are plain dicts (the attachments package builds them):

    {"kind": "image", "name", "mime", "size", "data": bytes, "preview": bytes, "meta": {...}}
    {"kind": "document", "name", "mime", "size", "text_index": {...}, "meta": {...}}

A new message stores its files in the transaction that stores the message (`begin_turn(...,
attachments=…)` calls `insert_attachments`): a refused file, or a conversation already at its
document limit, leaves nothing behind.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .base import InvalidArgument, StoreError, check_id, new_id
from .engines import Conn

__all__ = ["AttachmentsMixin", "AttachmentLimit", "insert_attachments", "KINDS"]

KINDS = ("image", "document")
_META_COLUMNS = ("id, conversation_id, message_id, kind, name, mime, size, meta, created_at")


class AttachmentLimit(StoreError):
    """The conversation already holds as many documents as allowed; nothing was written."""

    def __init__(self, limit: int, count: int):
        super().__init__(f"This conversation would hold {count} documents; at most {limit}. "
                         "Start a new conversation for more.")
        self.limit, self.count = limit, count


def _bytes(value: Any) -> bytes | None:
    # psycopg may hand back a memoryview for BYTEA; SQLite gives bytes.
    return None if value is None else bytes(value)


def _row(r: dict, with_data: bool = False) -> dict:
    out = {k: r[k] for k in ("id", "conversation_id", "message_id", "kind", "name", "mime",
                             "size", "created_at")}
    out["meta"] = json.loads(r.get("meta") or "{}")
    if "preview" in r:
        out["preview"] = _bytes(r["preview"])
    if with_data:
        out["data"] = _bytes(r.get("data"))
        out["text_index"] = json.loads(r["text_index"]) if r.get("text_index") else None
    return out


def _check_item(item: dict) -> None:
    if item.get("kind") not in KINDS:
        raise InvalidArgument(f"attachment kind must be one of {KINDS}")
    if not isinstance(item.get("name"), str) or not item["name"]:
        raise InvalidArgument("attachment name must be non-empty text")
    if item["kind"] == "image" and not isinstance(item.get("data"), bytes | bytearray):
        raise InvalidArgument("an image attachment needs its bytes")
    if item["kind"] == "document" and not isinstance(item.get("text_index"), dict):
        raise InvalidArgument("a document attachment needs its text index")


def insert_attachments(db: Conn, conv_id: str, message_id: str, items: list[dict],
                       now: float, max_documents: int | None = None) -> list[str]:
    """Store ``items`` under ``message_id`` inside the caller's transaction; their ids.
    Raises `AttachmentLimit` (roll the transaction back) past ``max_documents``."""
    for item in items:
        _check_item(item)
    new_docs = sum(1 for i in items if i["kind"] == "document")
    if new_docs and max_documents is not None:
        have = int(db.scalar("SELECT COUNT(*) FROM attachments WHERE conversation_id = ? "
                             "AND kind = 'document'", [conv_id]) or 0)
        if have + new_docs > max_documents:
            raise AttachmentLimit(max_documents, have + new_docs)
    ids = []
    for item in items:
        att_id = new_id()
        ti = item.get("text_index")
        db.execute(
            "INSERT INTO attachments (id, conversation_id, message_id, kind, name, mime, size, "
            "data, preview, text_index, meta, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [att_id, conv_id, message_id, item["kind"], item["name"][:300],
             item.get("mime") or "application/octet-stream", int(item.get("size") or 0),
             _bytes(item.get("data")), _bytes(item.get("preview")),
             json.dumps(ti, ensure_ascii=False) if ti is not None else None,
             json.dumps(item.get("meta") or {}), now])
        ids.append(att_id)
    return ids


class AttachmentsMixin:
    """Part of `Store`: attachments. Needs ``_write``/``_read`` and the ownership checks."""

    def add_attachments(self, user_id: str, message_id: str, items: list[dict], *,
                        max_documents: int | None = None) -> list[str]:
        """Attach ``items`` to one of the user's messages (its conversation's documents count
        against ``max_documents``). `NotFound` for someone else's message."""
        with self._write() as db:
            msg = self._own_message(db, user_id, message_id, lock=True)
            return insert_attachments(db, msg["conversation_id"], message_id, list(items),
                                      time.time(), max_documents)

    def list_attachments(self, user_id: str, conv_id: str, kind: str | None = None,
                         previews: bool = False) -> list[dict]:
        """The conversation's attachments, oldest first, without their data (``previews``:
        with the images' small previews, for the chat view)."""
        cols = _META_COLUMNS + (", preview" if previews else "")
        with self._read() as db:
            self._own_conversation(db, user_id, conv_id)
            sql = f"SELECT {cols} FROM attachments WHERE conversation_id = ?"
            args: list[Any] = [conv_id]
            if kind is not None:
                sql += " AND kind = ?"
                args.append(kind)
            return [_row(r) for r in db.rows(sql + " ORDER BY created_at, rowid", args)]

    def count_attachments(self, user_id: str, conv_id: str) -> int:
        with self._read() as db:
            self._own_conversation(db, user_id, conv_id)
            return int(db.scalar("SELECT COUNT(*) FROM attachments WHERE conversation_id = ?",
                                 [conv_id]) or 0)

    def conversation_documents(self, user_id: str, conv_id: str) -> list[dict]:
        """Every document attached anywhere in the conversation, with its text index."""
        with self._read() as db:
            self._own_conversation(db, user_id, conv_id)
            rows = db.rows(f"SELECT {_META_COLUMNS}, text_index FROM attachments "
                           "WHERE conversation_id = ? AND kind = 'document' "
                           "ORDER BY created_at, rowid", [conv_id])
        return [_row(r, with_data=True) for r in rows]

    def message_images(self, user_id: str, message_id: str) -> list[dict]:
        """The images sent with one message, with their bytes (what the model reads)."""
        check_id(user_id, "user_id")
        with self._read() as db:
            msg = self._own_message(db, user_id, message_id)
            rows = db.rows(f"SELECT {_META_COLUMNS}, data FROM attachments "
                           "WHERE message_id = ? AND conversation_id = ? AND kind = 'image' "
                           "ORDER BY created_at, rowid", [message_id, msg["conversation_id"]])
        return [_row(r, with_data=True) for r in rows]

    def get_attachment(self, user_id: str, attachment_id: str) -> dict:
        """One attachment with its data; `NotFound` when missing or someone else's."""
        from .base import NotFound

        check_id(user_id, "user_id")
        with self._read() as db:
            row = db.one("SELECT a.* FROM attachments a JOIN conversations c "
                         "ON c.id = a.conversation_id WHERE a.id = ? AND c.user_id = ?",
                         [attachment_id, user_id]) if isinstance(attachment_id, str) else None
        if row is None:
            raise NotFound(f"attachment {attachment_id!r} not found")
        return _row(row, with_data=True)
