"""Conversations, the message tree, feedback and replica state, on SQLite or PostgreSQL.

This package is the only place in the project that knows SQL. Callers talk to a `Store`
through the interface below; the same interface and the same behaviours hold on both engines
(the whole store test suite runs against each).

    Store("data/chatui.db")                              # SQLite file (sqlite-utils), default
    Store("sqlite:///data/chatui.db")                    # the same, as a URL
    Store("postgresql://user:pass@host:5432/chatui")     # PostgreSQL (psycopg 3 + psycopg_pool)

Modules, one concept each: `base` (errors, constants, values), `dialect` (where the two SQL
dialects differ), `engines` (connections and transactions), `schema` (migrations), `tree`
(users, conversations, messages), `feedback` (votes, dashboard), `exports` (iterators),
`replicas` (leases, rate, heartbeats), `turns` (a message and its answer begun in one
transaction), `search` (full-text search), `shares` (share links), `core` (the `Store` that
joins them).

Model
-----
* **users** ``id`` (the caller's own stable id: an anonymous browser id or an OAuth name),
  ``name``, ``kind``.
* **conversations** belong to one user; remember ``current_leaf_id`` (the message the UI shows
  the branch up to), ``model`` and ``system_prompt``.
* **messages** form a *tree* through ``parent_id``. Nothing is overwritten: a retry adds a
  sibling assistant message under the same user message, an edit adds a sibling user message
  under the same parent. Roles are ``user`` and ``assistant``; the system prompt lives on the
  conversation and is copied onto every assistant message (what that answer was generated with).
  Assistant messages also carry ``model``, ``backend``, ``params`` (dict), ``finish_reason``
  (``stop`` | ``length`` | ``stopped`` | ``error``; None while generating), ``error``,
  ``prompt_tokens``, ``completion_tokens``, ``ttft`` and ``duration`` (seconds), ``sources``
  (list of dicts), ``meta`` (dict: web-search steps and notices, seed, …).
* **feedback** at most one vote per assistant message (the latest wins), with ``reason``
  (``incorrect`` | ``unhelpful`` | ``unsafe`` | ``other``) and ``comment``, and a **snapshot** of
  what was judged, taken at vote time: the prompt messages (system prompt first when
  non-empty), the completion, model, backend, params and sources.

IDs are ``uuid4().hex`` (122 random bits): safe to show to clients. Timestamps are **epoch
seconds (float, UTC)** everywhere (``created_at``, ``updated_at``).

Ownership
---------
Every method that takes a conversation or message id also takes the acting ``user_id`` and
raises `NotFound` when the id does not exist *or belongs to someone else* (same error, same
message, so ids cannot be probed). Only `feedback_stats`, `latest_comments`, the export
iterators (owner dashboard, CLI) and `interrupt_stale` (a repair) read across users.

API (all methods are thread-safe)
---------------------------------
``Store(target, *, on_feedback=None, busy_timeout=10.0, synchronous="NORMAL", pool_size=16)``
    Opens (creating parent folders for a file) and migrates. Raises `StoreError`.
    ``on_feedback(event: dict)`` is called after each committed vote change (see
    `chatui.feedback_sync`); its exceptions are logged, never raised. Attributes: ``engine``
    (``"sqlite"`` | ``"postgresql"``), ``url``, ``path`` (the file; None on PostgreSQL),
    ``applied_migrations`` (versions this open applied).
``close()`` / context manager. ``schema_version() -> int``.

``ensure_user(user_id, name=None, kind=None) -> None``
``create_conversation(user_id, title="", model="", system_prompt="") -> str``
``list_conversations(user_id, limit=200) -> list[dict]``  newest first (by ``updated_at``):
    ``id, title, model, created_at, updated_at``
``get_conversation(user_id, conv_id) -> dict``  ``id, title, title_source, model,
    system_prompt, current_leaf_id, created_at, updated_at``. ``title_source``: who set the
    title, ``"auto"`` (first words), ``"model"``, ``"user"``, or None (unknown: set before
    schema v8, or a copy).
``update_conversation(user_id, conv_id, *, title=None, model=None, system_prompt=None,
    title_source=None)``
``rename_conversation(user_id, conv_id, title, by="user")``  ``by``: the title's source.
``delete_conversation(user_id, conv_id)``  cascades to messages and feedback.

``add_message(user_id, conv_id, role, content, parent_id=LEAF, **meta) -> str``
    ``parent_id=LEAF`` (default) appends under the current leaf; ``None`` makes a root message
    (editing the first message); any message id of that conversation adds a child there.
    So an edit is ``add_message(u, c, "user", text, parent_id=old["parent_id"])`` and a retry is
    ``add_message(u, c, "assistant", "", parent_id=user_msg_id, model=...)``. The new message
    becomes the current leaf. Assistant messages default ``model``/``system_prompt`` to the
    conversation's.
``update_message(user_id, message_id, **fields)``  when a streamed answer finishes:
    ``content, finish_reason, error, prompt_tokens, completion_tokens, ttft, duration, sources,
    params, model, backend, meta``.
``get_message(user_id, message_id) -> dict``
``branch(user_id, conv_id, leaf_id=None) -> list[dict]``  root → leaf (default: current leaf).
    Each message dict also has ``feedback`` (None or ``{label, reason, comment}``) and
    ``sibling_ids`` (ids of it and its siblings, oldest first: the UI's "< 2/3 >").
``siblings(user_id, message_id) -> list[dict]``  the message and its siblings, oldest first.
``set_current_leaf(user_id, conv_id, message_id, descend=True) -> str``
    With ``descend`` the newest descendant chain below ``message_id`` is followed down to a leaf
    (switching to a sibling shows that sibling's latest continuation); returns the leaf id.

``set_feedback(user_id, message_id, label, reason=None, comment=None) -> None``
    ``label`` True (up), False (down) or None (remove the vote). Assistant messages only.
``get_feedback(user_id, message_id) -> dict | None``  ``label, reason, comment, model,
    context, created_at, updated_at``.

Owner dashboard / export (all users):
``feedback_stats(since=None) -> list[dict]``  ``day`` (UTC ``YYYY-MM-DD``), ``model``, ``up``,
    ``down``; newest day first.
``latest_comments(limit=20) -> list[dict]``
``iter_feedback(since=None, model=None)``  one dict per voted message (``label``, ``reason``,
    ``comment``, ``model``, ``context`` snapshot, ids, times), oldest vote first.
``iter_conversations(since=None, model=None)``  every conversation with all its messages
    (the whole tree) and their votes.
``since`` accepts epoch seconds, ``datetime``/``date`` (naive = UTC) or an ISO-8601 string.

State shared by replicas (see `chatui.store.replicas`):
``acquire_generation(user_id, max_concurrent, ttl) -> str | None``  a lease id, or None when
    the user already has ``max_concurrent`` live leases. ``renew_generation(lease_id, ttl) ->
    bool`` (False: it had expired), ``release_generation(lease_id)``,
    ``active_generations(user_id) -> int``.
``record_message_and_check_rate(user_id, per_minute, window=60.0) -> bool``  True: counted;
    False: over the limit, not counted. ``rate_retry_after(user_id, per_minute, window=60.0)
    -> float`` seconds until one more would be accepted.
``heartbeat(user_id, message_id, content=None) -> bool``  a generating answer (assistant,
    ``finish_reason`` None) is still being written; False once it is not generating any more.
``interrupt_stale(conv_id=None, older_than=60.0) -> list[str]``  generating answers silent for
    ``older_than`` seconds become ``finish_reason="error"``, ``error=INTERRUPTED_ERROR``.

Sending a message (see `chatui.store.turns`):
``begin_turn(user_id, conv_id, content, *, title, model, system_prompt, backend, max_turns,
    max_concurrent, lease_ttl, per_minute, window) -> dict``  in ONE transaction: the limits
    (`LimitReached` and nothing written when one refuses), the conversation (new when
    ``conv_id`` is None), the user message and its empty generating answer, and a lease:
    ``conversation_id, new_conversation, branch, user_message_id, assistant_message_id,
    lease_id``.

Search and share links (issue 11; see `chatui.store.search`, `chatui.store.shares`):
``search_conversations(user_id, query, limit=20) -> list[dict]``  the user's own
    conversations whose title or message text has every word (the last as a prefix), best
    first: ``id, title, model, created_at, updated_at, message_id, snippet, title_match,
    score``. SQLite FTS5 / PostgreSQL tsvector+GIN (migration 5). ``rebuild_search_index()``
    re-indexes (SQLite, after a VACUUM).
``share_conversation(user_id, conv_id, leaf_id=None) -> str``  a snapshot of the branch.
``get_share(share_id) -> dict``  ``id, title, model, messages, created_at`` (anyone).
``list_shares(user_id)``, ``revoke_share(user_id, share_id)`` (owner only),
``continue_share(user_id, share_id) -> str``  a copy as a new conversation of the viewer.

Attachments (see `chatui.store.attachments`; ``begin_turn(..., attachments=[…], max_documents=N)``
stores a message's files with it):
``add_attachments(user_id, message_id, items, max_documents=None) -> list[str]``
``list_attachments(user_id, conv_id, kind=None, previews=False) -> list[dict]``  no data.
``conversation_documents(user_id, conv_id) -> list[dict]``  with ``text_index``.
``message_images(user_id, message_id) -> list[dict]``  with ``data``.
``get_attachment(user_id, attachment_id) -> dict``; ``count_attachments(user_id, conv_id)``.

Arena battles (see `chatui.store.battles`): ``begin_battle_turn`` (both sides' message and
answers in one transaction, two answers against the limits), ``settle_battle_turn``
(identical answers → tie), ``set_battle_vote``, ``get_battle``, ``battle_branches``,
``list_battles``, ``delete_battle``; across users ``battle_outcomes``, ``battle_pair_counts``,
``iter_battle_votes``. A battle's two conversations are owned by ``arena_owner(user_id)``.

Errors: `StoreError` (cannot open / migrate / write; one line naming the database and the
reason), `NotFound(StoreError, KeyError)`, `InvalidArgument(StoreError, ValueError)`,
`LimitReached(StoreError)` (``kind``, ``limit``, ``busy``, ``retry_after``).

Concurrency and durability: see `chatui.store.engines`.
"""

from __future__ import annotations

from .base import (FEEDBACK_REASONS, FINISH_REASONS, INTERRUPTED_ERROR, LEAF, ROLES,
                   InvalidArgument, LimitReached, NotFound, StoreError, to_epoch)
from .core import Store
from .schema import MIGRATIONS, SCHEMA_VERSION

__all__ = [
    "LEAF", "ROLES", "FINISH_REASONS", "FEEDBACK_REASONS", "SCHEMA_VERSION", "MIGRATIONS",
    "INTERRUPTED_ERROR", "Store", "StoreError", "NotFound", "InvalidArgument", "LimitReached",
    "to_epoch",
]
