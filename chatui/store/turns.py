"""A new message and the start of its answer, in one transaction, after the per-user limits.

Sending a message used to be six transactions before the model was asked (count answers
being written, count and record the message, create or touch the conversation, read the
branch, add the message, take an answers-at-once lease, add the empty answer), each its own
commit (an fsync on PostgreSQL) and, in the app, its own trip through a thread pool. When
many users send at once those trips queue behind one another and the first token waits for
all of them. `begin_turn` does the same work in one transaction: one commit, one trip, and
the checks and the writes can no longer interleave with another replica's.
"""

from __future__ import annotations

import time

from .base import MAX_TITLE_CHARS, LimitReached, check_id, new_id
from .replicas import _lock_user, _positive, count_message, rate_wait, take_lease


class TurnsMixin:
    """Part of `Store`: `begin_turn`. Needs the tree's and the replicas' helpers."""

    def begin_turn(self, user_id: str, conv_id: str | None, content: str, *, title: str = "",
                   model: str = "", system_prompt: str = "", backend: str | None = None,
                   max_turns: int | None = None, max_concurrent: int | None = None,
                   lease_ttl: float = 30.0, per_minute: int | None = None,
                   window: float = 60.0, attachments: list[dict] | None = None,
                   max_documents: int | None = None) -> dict:
        """Add the user message ``content`` at the end of the current branch of ``conv_id``
        (None: a new conversation titled ``title``) and, under it, the assistant answer that
        is about to be written (generating: no finish reason, a fresh heartbeat, ``model`` and
        ``backend``); the conversation remembers ``model`` and ``system_prompt``.

        Limits, checked first and in this order (None skips one); a refusal raises
        `LimitReached` and writes nothing:
          * ``max_turns``: the branch already holds that many messages;
          * ``max_concurrent``: the user's live answers-at-once leases; when accepted, one more
            lease (``lease_ttl`` seconds) is taken for this answer;
          * ``per_minute`` messages in ``window`` seconds; when accepted, this one is counted.

        Returns ``conversation_id``, ``new_conversation``, ``branch`` (the messages before the
        new one, as `branch` gives them), ``user_message_id``, ``assistant_message_id`` and
        ``lease_id`` (None without ``max_concurrent``). `NotFound` when ``conv_id`` is not the
        user's; nothing is written then either.

        ``attachments`` (dicts, see `chatui.store.attachments`) are stored with the user
        message; past ``max_documents`` documents in the conversation `AttachmentLimit` is
        raised and nothing is written. ``has_attachments`` in the result: whether the
        conversation holds any (so a turn without them skips looking them up).
        """
        check_id(user_id, "user_id")
        lease_ttl = _positive(lease_ttl, "lease_ttl")
        window = _positive(window, "window")
        now = time.time()
        user_msg, answer = new_id(), new_id()
        with self._write() as db:
            # Lock order: the user's limits, then the conversation row (no path takes the
            # conversation first and the user second, so two of these never dead-lock).
            _lock_user(db, user_id)
            if conv_id is not None:
                conv = self._own_conversation(db, user_id, conv_id, lock=True)
                branch = self._branch_of(db, conv)
            else:
                conv, branch = None, []
            if max_turns is not None and len(branch) >= int(max_turns):
                raise LimitReached("turns", int(max_turns))
            lease = None
            if max_concurrent is not None:
                lease, held = take_lease(db, user_id, max_concurrent, lease_ttl, now)
                if lease is None:
                    raise LimitReached("concurrent", int(max_concurrent), busy=held)
            if per_minute is not None and not count_message(db, user_id, per_minute, window,
                                                            now):
                raise LimitReached("rate", int(per_minute), retry_after=rate_wait(
                    db, user_id, per_minute, window, now))
            if conv is None:
                conv_id = new_id()
                db.execute("INSERT INTO users (id, kind, created_at, last_seen_at) "
                           "VALUES (?, 'anon', ?, ?) ON CONFLICT DO NOTHING",
                           [user_id, now, now])
                db.execute(
                    "INSERT INTO conversations (id, user_id, title, model, system_prompt, "
                    "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [conv_id, user_id, (title or "")[:MAX_TITLE_CHARS], model or "",
                     system_prompt or "", now, now])
                parent = None
            else:
                parent = conv["current_leaf_id"]
            db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, "
                       "created_at, updated_at) VALUES (?, ?, ?, 'user', ?, ?, ?)",
                       [user_msg, conv_id, parent, str(content or ""), now, now])
            # Files sent with the message: stored with it or not at all (see attachments.py).
            has_attachments = bool(attachments)
            if attachments:
                from .attachments import insert_attachments

                insert_attachments(db, conv_id, user_msg, attachments, now, max_documents)
            elif conv is not None:
                has_attachments = db.one("SELECT 1 AS x FROM attachments WHERE "
                                         "conversation_id = ? LIMIT 1", [conv_id]) is not None
            db.execute("INSERT INTO messages (id, conversation_id, parent_id, role, content, "
                       "model, backend, system_prompt, created_at, updated_at, heartbeat_at) "
                       "VALUES (?, ?, ?, 'assistant', '', ?, ?, ?, ?, ?, ?)",
                       [answer, conv_id, user_msg, model or None, backend, system_prompt or "",
                        now, now, now])
            db.execute("UPDATE conversations SET current_leaf_id = ?, updated_at = ?, "
                       "model = ?, system_prompt = ? WHERE id = ?",
                       [answer, now, model or "", system_prompt or "", conv_id])
        return {"conversation_id": conv_id, "new_conversation": conv is None, "branch": branch,
                "has_attachments": has_attachments,
                "user_message_id": user_msg, "assistant_message_id": answer, "lease_id": lease}

