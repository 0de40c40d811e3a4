"""Share links: a read-only snapshot of one branch, as it was when it was shared.

    sid = store.share_conversation(owner, conv_id)          # the branch on screen, now
    store.get_share(sid)           -> {"id", "title", "model", "messages", "created_at"}
    store.list_shares(owner)       -> the owner's links, newest first
    store.revoke_share(owner, sid) -> the link is gone: get_share raises NotFound
    store.continue_share(viewer, sid) -> a new conversation of the viewer's, a copy

What a link carries is copied at share time into the ``shares`` row (migration 5), so later
messages, other branches and votes are never part of it, whatever happens to the
conversation afterwards. Per message only what the chat renders: role, text, the model that
wrote it, how it finished, sources, and the web-search steps / notices / reasoning shown with
it; for a user message, the files sent with it as the chat shows them (`_snapshot_files`).
Never: the owner's id or name, message ids, votes, sampling parameters, the system
prompt, a full image, a document's text. An answer still being written is left out (the
snapshot would freeze half a sentence).

Ids are ``secrets.token_urlsafe(16)`` (128 random bits): unguessable, safe in a URL.
A missing, revoked or malformed id raises the same `NotFound` ("share link not found").
Only the owner lists or revokes; another user's attempt is `NotFound` as for a missing id.
Deleting the conversation deletes its links (a deletion should take everything with it).
A user holds at most ``MAX_SHARES_PER_USER`` links (`InvalidArgument` beyond: revoke some).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import time

from .attachments import insert_attachments
from .base import MAX_TITLE_CHARS, InvalidArgument, NotFound, check_id, new_id

_SHARE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
MAX_SHARES_PER_USER = 100
_META_KEPT = ("steps", "notices", "reasoning", "reasoning_duration")
_PREVIEW_MIMES = ("image/jpeg", "image/png")  # what chatui.attachments.images.preview writes


def _snapshot_message(m: dict, files: dict[str, list[dict]]) -> dict:
    meta = m.get("meta") or {}
    out = {"role": m["role"], "content": m["content"]}
    if m["role"] == "user" and files.get(m["id"]):
        out["attachments"] = files[m["id"]]
    if m["role"] == "assistant":
        out.update(model=m.get("model") or "", finish_reason=m.get("finish_reason"),
                   error=m.get("error"), sources=m.get("sources") or [],
                   meta={k: meta[k] for k in _META_KEPT if k in meta})
    return out


def _snapshot_files(db, conv_id: str, user_ids: set[str]) -> dict[str, list[dict]]:
    """message id -> what the chat shows of its files, for the branch's user messages only:
    an image's small preview (base64; never the full image) and a document's name, kind and
    pages (never its text: the page shows only the name, and the link carries no more)."""
    out: dict[str, list[dict]] = {}
    if not user_ids:
        return out
    rows = db.rows("SELECT message_id, kind, name, preview, meta FROM attachments "
                   "WHERE conversation_id = ? ORDER BY created_at, rowid", [conv_id])
    for r in rows:
        if r["message_id"] not in user_ids:
            continue
        meta = json.loads(r.get("meta") or "{}")
        if r["kind"] == "image":
            if r.get("preview") is None:
                continue
            item = {"kind": "image", "name": r["name"],
                    "preview_mime": meta.get("preview_mime") or "image/jpeg",
                    "preview": base64.b64encode(bytes(r["preview"])).decode("ascii")}
        else:
            item = {"kind": "document", "name": r["name"], "doc_kind": meta.get("doc_kind"),
                    "pages": meta.get("pages")}
        out.setdefault(r["message_id"], []).append(item)
    return out


def snapshot_file_rows(items: list[dict] | None) -> list[dict]:
    """A snapshot message's files as the rows the chat's attachment bubble reads
    (``kind, name, preview`` bytes, ``meta``); a malformed entry is skipped."""
    rows = []
    for it in items or []:
        if not isinstance(it, dict) or not isinstance(it.get("name"), str):
            continue
        if it.get("kind") == "image":
            try:
                data = base64.b64decode(it.get("preview") or "", validate=True)
            except (binascii.Error, ValueError):
                continue
            if data:
                rows.append({"kind": "image", "name": it["name"], "preview": data,
                             "meta": {"preview_mime": str(it.get("preview_mime") or "")}})
        elif it.get("kind") == "document":
            rows.append({"kind": "document", "name": it["name"],
                         "meta": {"doc_kind": it.get("doc_kind"), "pages": it.get("pages")}})
    return rows


def _copied_files(items: list[dict] | None) -> list[dict]:
    """A snapshot message's files as store items for a conversation continued from the link:
    an image is its preview (the full image was never shared; a later turn that resends it
    sends the preview); a document is its name with no text to search (marked so)."""
    out = []
    for r in snapshot_file_rows(items):
        meta = r["meta"]
        if r["kind"] == "image":
            mime = meta["preview_mime"] or "image/jpeg"
            if mime not in _PREVIEW_MIMES:  # a later turn may send it to a model as such
                continue
            out.append({"kind": "image", "name": r["name"], "mime": mime,
                        "size": len(r["preview"]), "data": r["preview"],
                        "preview": r["preview"], "meta": {"preview_mime": mime}})
        else:
            kind = meta.get("doc_kind") or "text"
            pages = meta.get("pages") if isinstance(meta.get("pages"), int) else None
            out.append({"kind": "document", "name": r["name"], "size": 0,
                        "text_index": {"name": r["name"], "kind": kind, "pages": pages,
                                       "title": "", "chunks": []},
                        "meta": {"pages": pages, "doc_kind": kind, "chunks": 0,
                                 "text_shared": False}})
    return out


def _not_found(share_id) -> NotFound:
    return NotFound("share link not found")


class SharesMixin:
    """Part of `Store`: share links. Needs ``_write``/``_read``, `_branch_of` and the
    ownership checks."""

    def share_conversation(self, user_id: str, conv_id: str, leaf_id: str | None = None) -> str:
        """Snapshot the branch up to ``leaf_id`` (default: the one on screen) into a new
        link; returns its id. `NotFound` when the conversation is not the user's."""
        share_id = secrets.token_urlsafe(16)
        with self._write() as db:
            conv = self._own_conversation(db, user_id, conv_id, lock=True)
            # Each link is a copy of a branch: a bound keeps one user from filling the disk.
            held = db.scalar("SELECT COUNT(*) FROM shares WHERE user_id = ?", [user_id])
            if held >= MAX_SHARES_PER_USER:
                raise InvalidArgument(f"you already have {MAX_SHARES_PER_USER} share links: "
                                      "revoke some first")
            branch = self._branch_of(db, conv, leaf_id)
            files = _snapshot_files(db, conv_id, {m["id"] for m in branch
                                                  if m["role"] == "user"})
            messages = [_snapshot_message(m, files) for m in branch
                        if not (m["role"] == "assistant" and m["finish_reason"] is None)]
            db.execute("INSERT INTO shares (id, user_id, conversation_id, title, model, "
                       "messages, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       [share_id, user_id, conv_id, conv["title"], conv["model"],
                        json.dumps(messages, ensure_ascii=False), time.time()])
        return share_id

    def get_share(self, share_id: str) -> dict:
        """A link's snapshot, for anyone holding its id (no user needed)."""
        if not isinstance(share_id, str) or not _SHARE_ID.fullmatch(share_id):
            raise _not_found(share_id)
        with self._read() as db:
            row = db.one("SELECT id, title, model, messages, created_at FROM shares "
                         "WHERE id = ?", [share_id])
        if row is None:
            raise _not_found(share_id)
        return {**row, "messages": json.loads(row["messages"])}

    def list_shares(self, user_id: str) -> list[dict]:
        """The user's links, newest first: ``id, conversation_id, title, created_at,
        message_count``."""
        check_id(user_id, "user_id")
        with self._read() as db:
            rows = db.rows("SELECT id, conversation_id, title, messages, created_at FROM shares "
                           "WHERE user_id = ? ORDER BY created_at DESC, rowid DESC", [user_id])
        for r in rows:
            r["message_count"] = len(json.loads(r.pop("messages")))
        return rows

    def revoke_share(self, user_id: str, share_id: str) -> None:
        """Delete the user's link; `NotFound` when it is missing or someone else's."""
        check_id(user_id, "user_id")
        with self._write() as db:
            gone = db.execute("DELETE FROM shares WHERE id = ? AND user_id = ?",
                              [share_id if isinstance(share_id, str) else "", user_id])
            if gone.rowcount != 1:
                raise _not_found(share_id)

    def continue_share(self, user_id: str, share_id: str) -> str:
        """Copy a link's snapshot into a new conversation of ``user_id`` (any user, the owner
        too); returns the new conversation's id. The copy is the viewer's own: further turns,
        votes and deletion do not touch the link or the original. Files come as the link
        shows them: image previews, and documents by name only (their text was not shared,
        so later questions do not search them)."""
        check_id(user_id, "user_id")
        share = self.get_share(share_id)
        now = time.time()
        conv_id = new_id()
        with self._write() as db:
            db.execute("INSERT INTO users (id, kind, created_at, last_seen_at) "
                       "VALUES (?, 'anon', ?, ?) ON CONFLICT DO NOTHING", [user_id, now, now])
            db.execute("INSERT INTO conversations (id, user_id, title, model, system_prompt, "
                       "created_at, updated_at) VALUES (?, ?, ?, ?, '', ?, ?)",
                       [conv_id, user_id, (share["title"] or "")[:MAX_TITLE_CHARS],
                        share["model"] or "", now, now])
            parent = None
            for i, m in enumerate(share["messages"]):
                msg_id, at = new_id(), now + i * 1e-6      # keeps the order on equal clocks
                assistant = m["role"] == "assistant"
                db.execute(
                    "INSERT INTO messages (id, conversation_id, parent_id, role, content, model, "
                    "finish_reason, error, sources, meta, created_at, updated_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [msg_id, conv_id, parent, m["role"], m["content"],
                     (m.get("model") or None) if assistant else None,
                     (m.get("finish_reason") or "stop") if assistant else None,
                     m.get("error") if assistant else None,
                     json.dumps(m.get("sources") or [], ensure_ascii=False),
                     json.dumps(m.get("meta") or {}, ensure_ascii=False, sort_keys=True),
                     at, at])
                if m["role"] == "user" and m.get("attachments"):
                    insert_attachments(db, conv_id, msg_id, _copied_files(m["attachments"]),
                                       at)
                parent = msg_id
            db.execute("UPDATE conversations SET current_leaf_id = ?, updated_at = ? "
                       "WHERE id = ?", [parent, now, conv_id])
        return conv_id
