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
it. Never: the owner's id or name, message ids, votes, sampling parameters, the system
prompt. An answer still being written is left out (the snapshot would freeze half a
sentence).

Ids are ``secrets.token_urlsafe(16)`` (128 random bits): unguessable, safe in a URL.
A missing, revoked or malformed id raises the same `NotFound` ("share link not found").
Only the owner lists or revokes; another user's attempt is `NotFound` as for a missing id.
Deleting the conversation deletes its links (a deletion should take everything with it).
A user holds at most ``MAX_SHARES_PER_USER`` links (`InvalidArgument` beyond: revoke some).
"""

from __future__ import annotations

import json
import re
import secrets
import time

from .base import MAX_TITLE_CHARS, InvalidArgument, NotFound, check_id, new_id

_SHARE_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
MAX_SHARES_PER_USER = 100
_META_KEPT = ("steps", "notices", "reasoning", "reasoning_duration")


def _snapshot_message(m: dict) -> dict:
    meta = m.get("meta") or {}
    out = {"role": m["role"], "content": m["content"]}
    if m["role"] == "assistant":
        out.update(model=m.get("model") or "", finish_reason=m.get("finish_reason"),
                   error=m.get("error"), sources=m.get("sources") or [],
                   meta={k: meta[k] for k in _META_KEPT if k in meta})
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
            messages = [_snapshot_message(m) for m in branch
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
        votes and deletion do not touch the link or the original."""
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
                parent = msg_id
            db.execute("UPDATE conversations SET current_leaf_id = ?, updated_at = ? "
                       "WHERE id = ?", [parent, now, conv_id])
        return conv_id
